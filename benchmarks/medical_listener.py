"""C-STORE throughput: our DICOM listener vs pynetdicom's own storage SCP, on the same files, in one run.

    .venv/bin/python -m benchmarks.medical_listener [--instances 200] [--database-url postgres://...]

- ours: `manage.py dicom_listener` (a subprocess, as `make run` starts it): association check
  against the DicomNode table, the data set written to a scratch file with its sha256, strict
  validation, content-addressed storage, Patient/Study/Series/Instance rows and the audit row
  on PostgreSQL;
- raw: pynetdicom's storage SCP in a subprocess with the minimal handler of pynetdicom's docs,
  `event.encoded_dataset()` written to a file, nothing else.

Both run side by side and are sent the same files in turn, `--repeat` rounds (the median round
counts), by one pynetdicom SCU over one association per round, with the files' encoded data sets
sent as they are (no decode and re-encode on the sending side), the SCPs with the same maximum
PDU size. Data: pydicom-data's `693_UNCI.dcm` (512 x 512, 16-bit CT, 526 kB)
copied into `--instances` instances of one series.

`compare(paths)` is the measure itself, for `benchmarks.medical_archive`: it expects Django set
up on the database to store into (it creates its own organization and DICOM node there).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.http_server import free_port
from benchmarks.throwaway_database import PG_SERVER, django_on_throwaway_database

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_FILE = "693_UNCI.dcm"
LISTENER_AE = "TESSERA"
READY_TIMEOUT_S = 60.0


def ct_instances(count: int, directory: Path) -> list[Path]:
    """`count` CT-sized instances of one new series: the 512 x 512 CT slice with new UIDs."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    source = get_testdata_file(SOURCE_FILE)
    if source is None:
        raise FileNotFoundError(f"{SOURCE_FILE} (pydicom-data)")
    dataset = pydicom.dcmread(source)
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(1, count + 1):
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.InstanceNumber = number
        path = directory / f"ct-{number:05d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def send_all(paths: Sequence[Path], *, port: int, calling_ae: str, called_ae: str = LISTENER_AE) -> float:
    """Seconds to C-STORE every file over one association; fails unless every status is success."""
    import pydicom
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import

    _config.STORE_SEND_CHUNKED_DATASET = True  # send each file's data set as it is, like a PACS
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    ae.add_requested_context(first.SOPClassUID, first.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        raise RuntimeError(f"association to port {port} as {calling_ae} refused")
    try:
        started = time.perf_counter()
        for path in paths:
            status = assoc.send_c_store(path)
            if status.get("Status") != 0x0000:
                raise RuntimeError(f"C-STORE of {path.name} answered {status.get('Status')!r} ({status})")
        return time.perf_counter() - started
    finally:
        assoc.release()


def echo(*, port: int, calling_ae: str, called_ae: str = LISTENER_AE) -> None:
    """One C-ECHO association (warms the SCP: its first association, its database connection)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        raise RuntimeError(f"association to port {port} as {calling_ae} refused")
    assoc.send_c_echo()
    assoc.release()


@contextlib.contextmanager
def scp_process(argv: list[str], port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run an SCP subprocess until the block ends (SIGTERM, then SIGKILL); wait for its port first."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[1:3]} exited: {log_path.read_text()[-2000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[1:3]} did not listen within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        try:
            yield process
        except Exception:
            print(f"--- {log_path.name} (tail) ---\n{log_path.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raw_scp_main(directory: Path, port: int, ae_title: str, maximum_pdu_size: int) -> None:
    """pynetdicom's storage SCP with the minimal handler: the encoded data set written to a file."""
    import signal

    from pydicom.uid import AllTransferSyntaxes
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.events import Event
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import

    directory.mkdir(parents=True, exist_ok=True)

    def handle_store(event: Event) -> int:
        with (directory / f"{event.request.AffectedSOPInstanceUID}.dcm").open("wb") as out:  # type: ignore[union-attr]
            out.write(event.encoded_dataset())
        return 0x0000

    ae = AE(ae_title=ae_title)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, [str(uid) for uid in AllTransferSyntaxes])  # type: ignore[arg-type]
    ae.add_supported_context(Verification)
    ae.maximum_pdu_size = maximum_pdu_size
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    while not stop:
        time.sleep(0.1)
    ae.shutdown()


def compare(paths: Sequence[Path], repeat: int = 3) -> dict[str, Any]:
    """C-STORE instances/s of `paths` through our listener and through pynetdicom's raw SCP.

    Both SCPs run side by side; `repeat` rounds send the files to each in turn (the median
    round counts, so a busy moment of a shared machine hits both). Django must be set up on the
    database to store into; each round stores into a new organization with its own DICOM node
    (so a round is never a run of no-op duplicates of the one before).
    """
    import statistics

    from apps.medical.listener import MAXIMUM_PDU_SIZE
    from apps.medical.models import Instance
    from apps.medical.services import dicom_node_create
    from core.tenancy.actors import Actor
    from core.tenancy.services import organization_create

    size_mb = sum(path.stat().st_size for path in paths) / 1e6
    ours_times, raw_times = [], []
    with tempfile.TemporaryDirectory(prefix="tessera-bench-scp-") as tmp:
        ours_port, raw_port = free_port(), free_port()
        ours_argv = [
            sys.executable, "manage.py", "dicom_listener",
            "--port", str(ours_port), "--bind", "127.0.0.1", "--ae-title", LISTENER_AE,
        ]  # fmt: skip
        raw_argv = [
            sys.executable, "-m", "benchmarks.medical_listener",
            "--raw-scp", str(Path(tmp) / "raw"), "--port", str(raw_port), "--max-pdu", str(MAXIMUM_PDU_SIZE),
        ]  # fmt: skip
        with (
            scp_process(ours_argv, ours_port, Path(tmp) / "ours.log"),
            scp_process(raw_argv, raw_port, Path(tmp) / "raw.log"),
        ):
            for _ in range(repeat):
                suffix = uuid.uuid4().hex[:6].upper()
                org, _ = organization_create(slug=f"bench-listener-{suffix.lower()}", name="Listener benchmark")
                calling_ae = f"BENCH_{suffix}"
                dicom_node_create(actor=Actor.system(org), ae_title=calling_ae)
                echo(port=ours_port, calling_ae=calling_ae)
                ours_times.append(send_all(paths, port=ours_port, calling_ae=calling_ae))
                stored = Instance.objects.filter(organization=org).count()
                if stored != len(paths):
                    raise RuntimeError(f"the listener stored {stored} of {len(paths)} instances")
                echo(port=raw_port, calling_ae=calling_ae)
                raw_times.append(send_all(paths, port=raw_port, calling_ae=calling_ae))
    ours_s, raw_s = statistics.median(ours_times), statistics.median(raw_times)
    ours, raw = len(paths) / ours_s, len(paths) / raw_s
    return {
        "instances": len(paths),
        "rounds": repeat,
        "megabytes": round(size_mb, 1),
        "ours_per_s": round(ours, 1),
        "raw_per_s": round(raw, 1),
        "ours_mb_per_s": round(size_mb / ours_s, 1),
        "raw_mb_per_s": round(size_mb / raw_s, 1),
        "ratio": round(ours / raw, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the median counts)")
    parser.add_argument("--database-url", default=PG_SERVER, help="a PostgreSQL server (no database name)")
    parser.add_argument("--raw-scp", type=Path, help=argparse.SUPPRESS)  # the raw SCP subprocess
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-pdu", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_scp is not None:
        raw_scp_main(args.raw_scp, args.port, LISTENER_AE, args.max_pdu)
        return
    with django_on_throwaway_database(args.database_url, "tessera_bench_listener") as (var_dir, _):
        paths = ct_instances(args.instances, var_dir / "files")
        result = compare(paths, repeat=args.repeat)
    print(
        f"C-STORE of {result['instances']} CT instances ({result['megabytes']} MB), one association, PostgreSQL, "
        f"median of {result['rounds']} rounds:\n"
        f"  ours (dicom_listener): {result['ours_per_s']:7.1f} instances/s  ({result['ours_mb_per_s']} MB/s)\n"
        f"  raw pynetdicom SCP:    {result['raw_per_s']:7.1f} instances/s  ({result['raw_mb_per_s']} MB/s)\n"
        f"  ratio ours/raw:        {result['ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
