"""Prelude for a child process that must meet permission bits as an ordinary user does.

Not imported: tests read this file and put it in front of the program they run with
``python -c``. When the child runs as root it drops CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH from its effective set (exit code 77 if it cannot), so a
read-only file or directory refuses it as it would refuse anyone else.
"""

import ctypes
import os
import sys

if os.geteuid() == 0:

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        sys.exit(77)
    data[0].effective &= ~((1 << 1) | (1 << 2))  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    if libc.capset(ctypes.byref(header), data) != 0:
        sys.exit(77)
