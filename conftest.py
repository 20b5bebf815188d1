"""Settings every test in the repository needs, whichever folder pytest is started on."""

import multiprocessing

# Some tests call nnU-Net's dataset check, which opens a multiprocessing Pool with the default start
# method. By then this process runs Dask, Qt, torch and autosave threads, and a forked child inherits
# whatever locks they held at that instant: it can wait on one forever (the suite hung in
# test_export under load). A fork server starts children from a clean single-threaded process.
multiprocessing.set_start_method("forkserver", force=True)
