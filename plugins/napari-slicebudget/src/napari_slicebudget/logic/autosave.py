"""Keep the annotator's work on disk as they go, so that a crash loses at most the last second.

A session lives in ``<image>.slicebudget/`` beside the image (or a folder the user picks):

- ``labels.nii.gz``: a checkpoint of the labels, with exactly the image's header;
- ``state.json``: the ledger at that checkpoint and the number of the last action it includes;
- ``journal-<first>.bin``: every action since, appended as it happens (the slices it changed, whole,
  and the ledger after it), each record with its length and a CRC so a torn last record is dropped.

Checkpoint files are written to a temporary name and renamed into place, labels first; journal
records replace whole slices, so replaying one twice does no harm and a crash between the two
renames loses nothing. Old journals are deleted only after the checkpoint that covers them.
All writing happens in one background thread, in order; :meth:`Autosaver.drain` waits for it.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slicebudget.errors import UserError
from slicebudget.io import atomic_write, read_json, read_labels, write_volume
from slicebudget.volume import Volume

from napari_slicebudget.logic.ledger import SliceLedger, foreground_per_slice

SESSION_SUFFIX = ".slicebudget"
LABELS_FILE, STATE_FILE = "labels.nii.gz", "state.json"
SESSION_FORMAT, SESSION_VERSION = "slicebudget-session", 2
MAGIC = b"SBJ2"
HEADER = struct.Struct("<4sIII")  # magic, header bytes, payload bytes, CRC of both
CHECKPOINT_EVERY = 200  # journal records between checkpoints


def session_folder(image_path: str | Path) -> Path:
    """``/data/ct.nii.gz`` -> ``/data/ct.nii.gz.slicebudget``."""
    image_path = Path(image_path)
    return image_path.with_name(image_path.name + SESSION_SUFFIX)


def has_session(folder: str | Path) -> bool:
    return (Path(folder) / STATE_FILE).is_file()


def smallest_label_dtype(labels: np.ndarray) -> np.dtype:
    top = int(labels.max()) if labels.size else 0
    return np.dtype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)


def _journal_name(first_seq: int) -> str:
    return f"journal-{first_seq:09d}.bin"


def _journals(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for path in folder.glob("journal-*.bin"):
        try:
            found.append((int(path.stem.split("-")[1]), path))
        except (IndexError, ValueError):
            continue
    return sorted(found)


# ---- writing ---------------------------------------------------------------------------------
def write_checkpoint(folder: Path, labels: np.ndarray, like: Volume, ledger: SliceLedger, seq: int) -> None:
    """Labels, then the ledger with ``seq``; then the journals this checkpoint covers go."""
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(labels.astype(smallest_label_dtype(labels), copy=False), like, folder / LABELS_FILE)
    state = {"format": SESSION_FORMAT, "version": SESSION_VERSION, "journal_seq": seq, "ledger": ledger.to_dict()}
    with atomic_write(folder / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state, indent=1) + "\n")
    for first, path in _journals(folder):
        if first <= seq:
            path.unlink(missing_ok=True)


def encode_record(seq: int, ledger: SliceLedger, slices, data: np.ndarray) -> bytes:
    data = np.ascontiguousarray(data)
    header = json.dumps({"seq": seq, "slices": [int(s) for s in slices], "dtype": data.dtype.str,
                         "shape": list(data.shape), "ledger": ledger.to_dict()}).encode()
    payload = zlib.compress(data.tobytes(), 1)
    return HEADER.pack(MAGIC, len(header), len(payload), zlib.crc32(header + payload)) + header + payload


def read_records(path: Path):
    """(header dict, slice data) for each whole record of a journal; stops at a torn or damaged one."""
    blob = path.read_bytes()
    at = 0
    while at + HEADER.size <= len(blob):
        magic, n_header, n_payload, crc = HEADER.unpack_from(blob, at)
        body = blob[at + HEADER.size: at + HEADER.size + n_header + n_payload]
        if magic != MAGIC or len(body) != n_header + n_payload or zlib.crc32(body) != crc:
            return
        header = json.loads(body[:n_header])
        data = np.frombuffer(zlib.decompress(body[n_header:]), dtype=np.dtype(header["dtype"]))
        yield header, data.reshape(header["shape"])
        at += HEADER.size + n_header + n_payload


class Autosaver:
    """Writes journal records and checkpoints in one background thread, in the order given."""

    def __init__(self, folder: Path, like: Volume, seq: int = 0, on_error: Callable[[BaseException], None] | None = None):
        self.folder, self.like, self.seq, self.on_error = Path(folder), like, seq, on_error
        self.records_since_checkpoint = 0
        self._journal = self.folder / _journal_name(seq + 1)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="slicebudget-autosave", daemon=True)
        self._thread.start()

    def record(self, ledger: SliceLedger, slices, data: np.ndarray) -> None:
        """Journal one action: ``data`` holds the whole new content of ``slices`` (a copy)."""
        self.seq += 1
        self.records_since_checkpoint += 1
        self._queue.put(("record", self.seq, ledger, list(slices), data))

    def checkpoint(self, labels: np.ndarray, ledger: SliceLedger) -> None:
        """Write ``labels`` and ``ledger`` as of the last record, then start a new journal.

        ``labels`` may be the live array (copying 300 x 512 x 512 voxels would stall the GUI): a slice
        changed while the checkpoint is written is in a later journal record, which reopening replays
        over it as a whole slice.
        """
        self.records_since_checkpoint = 0
        self._queue.put(("checkpoint", self.seq, ledger, labels))

    def drain(self) -> None:
        """Wait until everything handed over so far is on disk."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while items[-1][0] == "record":  # coalesce records queued meanwhile into one append
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(items)
            except BaseException as exc:  # noqa: BLE001 -- reported to the GUI, the thread lives on
                if self.on_error is not None:
                    self.on_error(exc)
            finally:
                for _ in items:
                    self._queue.task_done()

    def _write(self, items) -> None:
        records = [encode_record(*item[1:]) for item in items if item[0] == "record"]
        if records:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self._journal, "ab") as fh:
                fh.write(b"".join(records))
                fh.flush()
        if items[-1][0] == "checkpoint":
            _, seq, ledger, labels = items[-1]
            write_checkpoint(self.folder, labels, self.like, ledger, seq)
            self._journal = self.folder / _journal_name(seq + 1)


# ---- reading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Restored:
    labels: np.ndarray
    ledger: SliceLedger
    seq: int
    replayed: int  # journal records applied on top of the checkpoint
    downgraded: tuple[int, ...]  # slices whose saved state the labels contradicted


def _read_state(path: Path) -> dict:
    raw = read_json(path, missing="no saved session here", missing_path=path.parent)
    if not isinstance(raw, dict) or raw.get("format") != SESSION_FORMAT:
        old = isinstance(raw, dict) and raw.get("version") == 1
        raise UserError(("autosave of napari-slicebudget 0.1 (format 1), which could count propagated slices as "
                         "painted by a person, so it is not resumed; its labels are in labels.nii.gz beside it: move "
                         "the folder away or pick another autosave folder") if old else
                        "not a slicebudget session file", path)
    if raw.get("version") != SESSION_VERSION:
        raise UserError(f"session format version {raw.get('version')}; this napari-slicebudget reads version "
                        f"{SESSION_VERSION} (update the plugin)", path)
    return raw


def load_session(folder: str | Path, like: Volume) -> Restored:
    """The checkpoint plus every whole journal record after it, checked against ``like``'s grid."""
    folder = Path(folder)
    state_path = folder / STATE_FILE
    raw = _read_state(state_path)
    try:
        seq = int(raw["journal_seq"])
        ledger = SliceLedger.from_dict(raw["ledger"], str(state_path))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"session file is damaged ({exc})", state_path) from exc
    if ledger.depth != like.shape[0]:
        raise UserError(f"saved session has {ledger.depth} slices, the image {like.shape[0]}", state_path)
    labels = np.array(read_labels(folder / LABELS_FILE, like=like).array)
    replayed = 0
    for _, path in _journals(folder):
        for header, data in read_records(path):
            if header["seq"] <= seq:
                continue
            slices = header["slices"]
            if data.shape[1:] != labels.shape[1:] or any(not 0 <= s < labels.shape[0] for s in slices):
                raise UserError(f"journal record {header['seq']} does not fit the image", path)
            if labels.dtype.itemsize < data.dtype.itemsize:
                labels = labels.astype(data.dtype)
            labels[slices] = data
            ledger = SliceLedger.from_dict(header["ledger"], str(path))
            seq, replayed = header["seq"], replayed + 1
    for tmp in folder.glob(".tmp-*"):  # left by a crash in the middle of a checkpoint
        tmp.unlink(missing_ok=True)
    contradicted = ledger.contradictions(foreground_per_slice(labels))
    return Restored(labels, ledger.downgraded(contradicted), seq, replayed, tuple(contradicted))
