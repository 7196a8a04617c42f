/* A Windows process for tests/wine.rs to drive cargo-styxy.exe with:
   - `helper lock FILE`: holds an exclusive LockFileEx on FILE (as the registry's lock is
     held) and says "locked" once it does, until its stdin closes;
   - `helper hold FILE MS`: opens FILE for reading without delete sharing (as some readers
     do, which keeps a rename from replacing it), says "open", closes it after MS ms;
   - `helper metadata ARGS...`: is cargo, for `cargo metadata` (runs $STYXY_TEST_CARGO);
   - `helper run ARGS...`: is `cargo run` of a server: exits with $STYXY_TEST_EXIT if set,
     else writes "started" to $STYXY_TEST_MARK and sleeps until killed. */
#include <windows.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "lock") == 0) {
        HANDLE f = CreateFileA(argv[2], GENERIC_READ | GENERIC_WRITE,
                               FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                               OPEN_ALWAYS, 0, NULL);
        OVERLAPPED o = {0};
        if (f == INVALID_HANDLE_VALUE || !LockFileEx(f, LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &o)) {
            fprintf(stderr, "cannot lock %s: %lu\n", argv[2], GetLastError());
            return 2;
        }
        printf("locked\n");
        fflush(stdout);
        while (getchar() != EOF) {
        }
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "hold") == 0) {
        HANDLE f = CreateFileA(argv[2], GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0,
                               NULL);
        if (f == INVALID_HANDLE_VALUE) {
            fprintf(stderr, "cannot open %s: %lu\n", argv[2], GetLastError());
            return 2;
        }
        printf("open\n");
        fflush(stdout);
        Sleep((DWORD)atoi(argv[3]));
        CloseHandle(f);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "metadata") == 0) {
        const char *cargo = getenv("STYXY_TEST_CARGO");
        if (!cargo) {
            return 3;
        }
        argv[0] = (char *)cargo;
        return (int)_spawnv(_P_WAIT, cargo, (const char *const *)argv);
    }
    if (argc >= 2 && strcmp(argv[1], "run") == 0) {
        const char *code = getenv("STYXY_TEST_EXIT");
        if (code) {
            return atoi(code);
        }
        const char *mark = getenv("STYXY_TEST_MARK");
        if (mark) {
            FILE *m = fopen(mark, "w");
            if (m) {
                fprintf(m, "started\n");
                fclose(m);
            }
        }
        Sleep(INFINITE);
    }
    return 4;
}
