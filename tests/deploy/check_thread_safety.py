#!/usr/bin/env python3
"""Checks the daemon's lock annotations (ABSL_GUARDED_BY and friends) with
clang's -Wthread-safety. The build itself uses GCC, which ignores them, so
each daemon source that includes an annotated header is parsed once more by
clang (syntax only), with the flags from the build's compile_commands.json.

Usage: check_thread_safety.py REPO BUILD_DIR. Exit 77 (skipped) without
clang++.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor


def main():
    repo, build = sys.argv[1], sys.argv[2]
    clang = shutil.which("clang++")
    if clang is None:
        print("clang++ not installed: skipped")
        return 77
    with open(os.path.join(build, "compile_commands.json")) as f:
        commands = json.load(f)
    daemon = os.path.join(repo, "daemon") + os.sep
    annotated = set()
    for root, _, files in os.walk(daemon):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".h") and "ABSL_GUARDED_BY" in open(path).read():
                annotated.add(os.path.relpath(path, repo))
    jobs = []
    for entry in commands:
        source = entry["file"]
        if not source.startswith(daemon) or not source.endswith(".cc"):
            continue
        text = open(source).read()
        includes = set(re.findall(r'#include "([^"]+)"', text))
        if not includes & annotated:
            continue
        args = entry.get("arguments") or shlex.split(entry["command"])
        flags = [a for a in args[1:] if not a.startswith("-W") and a not in ("-c",)]
        # GCC's precompiled header (CMake's cmake_pch.hxx) is not clang's:
        # without it, each source is checked with only what it includes.
        pch = {i for i, a in enumerate(flags) if "cmake_pch" in a and flags[i - 1] == "-include"}
        flags = [a for i, a in enumerate(flags) if i not in pch and i + 1 not in pch]
        # Drop the output file: syntax only.
        if "-o" in flags:
            i = flags.index("-o")
            del flags[i : i + 2]
        jobs.append(
            (source, [clang, "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety",
                      "-Wno-unknown-warning-option"] + flags)
        )
    if not jobs:
        print("no annotated daemon sources found")
        return 1

    def run(job):
        source, cmd = job
        done = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
        return source, done.returncode, done.stderr

    failed = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for source, rc, err in pool.map(run, jobs):
            if rc != 0:
                failed += 1
                print(f"{os.path.relpath(source, repo)}:\n{err}")
    print(f"thread-safety: {len(jobs)} daemon sources checked, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
