import os

# Before torch is imported: busy-waiting OpenMP threads make a loaded 2-core machine 40x slower
# (see STACK.md, "the thread trap").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.main import main  # noqa: E402

main()
