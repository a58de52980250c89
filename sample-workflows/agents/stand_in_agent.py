#!/usr/bin/env python3
"""A stand-in agent for the samples: reads a prompt, "thinks", prints a reply.

It behaves like `claude -p` or `llm` from wfrun's point of view (prompt on stdin or as the last
argument, reply on stdout), so the sample workflows run on any machine without an account.
"""

import argparse
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.2, help="seconds to 'think'")
    parser.add_argument("--json", action="store_true", help="reply as {\"result\": ...}")
    parser.add_argument("prompt", nargs="?", help="the prompt (default: read stdin)")
    options = parser.parse_args()
    prompt = options.prompt if options.prompt is not None else sys.stdin.read()
    print(f"stand-in agent: thinking about {len(prompt)} characters", file=sys.stderr)
    time.sleep(options.delay)
    model = os.environ.get("WFRUN_PARAM_MODEL", "stand-in")
    first_line = prompt.strip().splitlines()[0] if prompt.strip() else "(empty prompt)"
    reply = f"[{model}] Done: {first_line}"
    print(json.dumps({"result": reply, "model": model}) if options.json else reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
