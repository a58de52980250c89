"""A stand-in agent program for the tests: takes a prompt, prints a reply, can misbehave.

The prompt comes from the positional argument when given, else from stdin. The reply is
`model=<model> prompt=<prompt>` as text, or with --json an object carrying the prompt, the model,
nested data for `result:` extraction and the environment variables named with --env.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("prompt", nargs="?")
    parser.add_argument("--model", default="none")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="echo this variable")
    parser.add_argument("--raw", help="print this instead of a reply")
    parser.add_argument("--stderr", help="also write this to stderr")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--spawn-sleeper", metavar="PIDFILE", help="start `sleep 60`, note pid")
    parser.add_argument("--exit", type=int, default=0)
    return parser.parse_args(argv)


def reply(args: argparse.Namespace, prompt: str) -> str:
    if args.raw is not None:
        return str(args.raw)
    if not args.json:
        return f"model={args.model} prompt={prompt}"
    document = {
        "prompt": prompt,
        "model": args.model,
        "result": {"text": f"reviewed: {prompt}", "items": [{"name": "a"}, {"name": "b"}]},
        "env": {name: os.environ.get(name) for name in args.env},
    }
    return json.dumps(document)


def main() -> int:
    args = parse_args(sys.argv[1:])
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if args.spawn_sleeper:
        sleeper = subprocess.Popen(["sleep", "60"])
        with open(args.spawn_sleeper, "w") as file:
            file.write(str(sleeper.pid))
    if args.stderr:
        print(args.stderr, file=sys.stderr, flush=True)
    time.sleep(args.sleep)
    print(reply(args, prompt), flush=True)
    return int(args.exit)


if __name__ == "__main__":
    sys.exit(main())
