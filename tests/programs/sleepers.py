"""A tree of sleeping Python processes for the tests, as a JSON description.

    python sleepers.py '[null, [null, null]]'

The argument lists this process's children: ``null`` is a leaf (it sleeps),
a list is a process with those children.  Each process starts its children,
says "up" on stdout once every one of them has, then waits for them; so the
root's "up" means the whole tree runs.  Ending the leaves ends the tree.
"""

import json
import subprocess
import sys
import time

spec = json.loads(sys.argv[1])
if spec is None:
    print("up", flush=True)
    time.sleep(300)
else:
    children = [
        subprocess.Popen([sys.executable, __file__, json.dumps(sub)], stdout=subprocess.PIPE, text=True)
        for sub in spec
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "up\n"
    print("up", flush=True)
    for child in children:
        child.wait()
