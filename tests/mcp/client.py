"""Drives `cargo-styxy styxy mcp` with the MCP Python SDK's stdio client, as an agent's
client would, and prints one JSON object of what each step answered (tests/mcp.rs checks
it). Usage: client.py CARGO_STYXY MANIFEST"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def text(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def main(binary, manifest):
    # The SDK passes only a few variables by default: the test's STYXY_HOME must reach the
    # server (never the real registry).
    server = StdioServerParameters(command=binary, args=["styxy", "mcp"], env=dict(os.environ))
    out = {}
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            out["tools"] = {t.name: t.description for t in tools.tools}

            async def call(name, args):
                r = await session.call_tool(name, args)
                return {"error": bool(r.is_error), "text": text(r)}

            out["ports"] = await call("ports", {"manifest_path": manifest})
            out["port"] = await call("port", {"service": "echo", "manifest_path": manifest})
            out["env"] = await call("env", {"format": "json", "manifest_path": manifest})
            out["start"] = await call("start", {"package": "echo", "manifest_path": manifest})
            out["start_again"] = await call(
                "start", {"package": "echo", "manifest_path": manifest}
            )
            out["wait"] = await call(
                "wait", {"services": ["echo"], "timeout": "120s", "manifest_path": manifest}
            )
            pid = json.loads(out["start"]["text"])["pid"] if not out["start"]["error"] else 0
            out["stop"] = await call("stop", {"pid": pid})
            out["list"] = await call("list", {})
            out["bad_argument"] = await call("port", {"servce": "echo"})
            out["unknown_service"] = await call(
                "port", {"service": "nope", "manifest_path": manifest}
            )
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2]))
