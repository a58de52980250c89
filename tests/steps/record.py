"""A test step that records when it really ran: `record.py OUT_DIR SECONDS [EXIT_CODE]`.

Writes OUT_DIR/<WFRUN_STEP_ID>.json = [start, end] (time.time()), so tests judge concurrency from
evidence the steps leave themselves rather than from wfrun's own bookkeeping.
"""

import json
import os
import sys
import time

start = time.time()
out, seconds = sys.argv[1], float(sys.argv[2])
code = int(sys.argv[3]) if len(sys.argv) > 3 else 0
print(f"{os.environ['WFRUN_STEP_ID']} working", flush=True)
time.sleep(seconds)
end = time.time()
with open(os.path.join(out, os.environ["WFRUN_STEP_ID"] + ".json"), "w") as f:
    json.dump([start, end], f)
sys.exit(code)
