import sys
from pathlib import Path

# Let test modules import the shared NumPy references as `import reference`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
