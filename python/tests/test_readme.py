"""The README's first Python example runs as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO


def test_readme_example(node):
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python: `import axon`"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = dict(os.environ, AXON_SOCKET=node.socket,
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0. 2. 4. 6.]"
