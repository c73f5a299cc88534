"""CPython's side of tests/test_shareable_list.cpp (mp <-> multiprocessing.shared_memory.ShareableList).

  shareable_list_peer.py attach NAME
      Attaches to the list mp made, prints repr(list(sl)) and sl.format, changes some items (see
      below), prints "done". Python 3.8-3.12 register even a segment they only attach to with the
      resource tracker, which would unlink it when this process ends (gh-82300): unregistered at
      once, so the segment stays mp's to unlink.

  shareable_list_peer.py create
      Makes a ShareableList of VALUES, prints its shm name, its format and its bytes (hex), and
      leaves it behind for mp to read and unlink: unregistered from the resource tracker, so that
      this process's exit does not remove it.

Any failure is a traceback on stderr and a non-zero exit status.
"""
import sys
from multiprocessing import resource_tracker, shared_memory

VALUES = [
    'howdy', b'HoWdY', None, 42, -7, -2**63, 2**63 - 1, 2.5, -0.0, True, False,
    '', b'', 'abcdefgh', b'\x00ab\x00', 'h\u00e9llo', -1e300,
]


def attach(name):
    sl = shared_memory.ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    print(repr(list(sl)))
    print(sl.format)
    sl[0] = 'PYTHON'          # str into its own 8s slot
    sl[1] = b'\x01\x02'       # bytes
    sl[3] = 12345             # int
    sl[5] = 2.5               # None -> float
    sl[6] = None              # bool -> None
    sl[9] = 'str!'            # bytes slot -> str (keeps "8s")
    print('done')
    sl.shm.close()


def create():
    sl = shared_memory.ShareableList(VALUES)
    print(sl.shm.name, flush=True)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    print(sl.format)
    print(bytes(sl.shm.buf).hex())
    sl.shm.close()


if __name__ == '__main__':
    if sys.argv[1] == 'attach':
        attach(sys.argv[2])
    elif sys.argv[1] == 'create':
        create()
    else:
        sys.exit('usage: shareable_list_peer.py attach NAME | create')
