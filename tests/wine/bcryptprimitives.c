/* Wine 8 lacks bcryptprimitives.dll, whose ProcessPrng Rust's std imports for its random
   numbers: this stand-in forwards to RtlGenRandom (advapi32's SystemFunction036). Built by
   tests/wine.rs with x86_64-w64-mingw32-gcc into the test's own Wine prefix. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) { return SystemFunction036(data, (ULONG)length); }
