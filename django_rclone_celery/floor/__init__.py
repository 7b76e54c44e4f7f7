"""The floor both verb families stand on: ``operations/`` and ``pgclone/`` import
from here, never from each other.

* :mod:`.run`: one run of an operation, its stages (signals, logs) and progress;
* :mod:`.publish`: atomic publication on a remote (partial name, then ``moveto``);
* :mod:`.catalogue`: one object's entry on a remote, stale partials swept;
* :mod:`.manifest`: the manifest beside every backup, read and checked;
* :mod:`.staging`: a staging session (stage, discard on failure, swap on success).

The one stream tap they all use, :mod:`..tap`, sits lower, beside the
process gateway that feeds it. Nothing is re-exported here.
"""
