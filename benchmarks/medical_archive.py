"""Medical archive benchmark: our DICOMweb paths vs the raw libraries on the same files, in one run.

Run by hand (not in the test suite):

    .venv/bin/python -m benchmarks.medical_archive [--instances 300] [--studies 10000] [--requests 200] [--quick]

Data: pydicom-data's `693_UNCI.dcm`, a 512 x 512 16-bit CT slice (526 kB), copied into `--instances`
instances of one series (new SOP Instance UIDs and instance numbers, written with pydicom).

1. STOW-RS ingest: the instances POSTed in bodies of 25 to a real gunicorn (2 threads), instances/s;
   vs raw: `pydicom.dcmread` of each file plus one PostgreSQL INSERT per instance of the same
   attributes (the indexed columns and pydicom's `Dataset.to_json_dict` without bulk data),
   committed in the same batches. Goal: >= 100 instances/s and >= 0.5x raw.
2. C-STORE through our listener vs pynetdicom's own storage SCP writing the dataset to disk
   (`benchmarks.medical_listener`, when present).
3. QIDO-RS study search with `--studies` studies in the index (rows bulk-inserted): p50/p99 of a
   mix of the queries OHIF and scripts send, vs the trivial authenticated endpoint as the floor.
4. WADO-RS retrieve of the whole series (multipart/related), MB/s, vs reading the same stored
   files from disk.
5. Rendered frame: GET .../instances/{uid}/rendered (JPEG) p50, vs raw pydicom + numpy + Pillow in
   process (modality LUT, the file's window, 8 bit, JPEG).

Everything runs on PostgreSQL (127.0.0.1:5432, trust auth): a throw-away database is created at
the start and dropped at the end (`--database-url` for another server); media goes to a temp folder.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.http_server import gunicorn_server, timed_request
from benchmarks.medical_listener import ct_instances
from benchmarks.throwaway_database import PG_SERVER, django_on_throwaway_database
from benchmarks.timing import median_of

FLOOR_PATH = "/api/v1/jobs/"
ROOT = "/api/v1/medical/dicomweb"
STOW_BATCH = 25
GOALS = {"stow_per_s": 100.0, "stow_ratio": 0.5}


# --- Setup ------------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def _stow_body(paths: list[Path], boundary: str) -> bytes:
    out = bytearray()
    for path in paths:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + path.read_bytes() + b"\r\n"
    return bytes(out + f"--{boundary}--\r\n".encode())


def _request(port: int, method: str, path: str, key: str, body: bytes | None = None, **headers: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {key}", **headers})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


# --- 1. STOW ------------------------------------------------------------------------------------


def stow_benchmark(port: int, key: str, paths: list[Path]) -> dict[str, float]:
    boundary = "bench-boundary"
    bodies = [_stow_body(paths[i : i + STOW_BATCH], boundary) for i in range(0, len(paths), STOW_BATCH)]
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    started = time.perf_counter()
    for body in bodies:
        status, data = _request(port, "POST", f"{ROOT}/studies", key, body, **{"Content-Type": content_type})
        if status != 200:
            raise RuntimeError(f"STOW answered {status}: {data[:300]!r}")
    seconds = time.perf_counter() - started
    return {"instances": len(paths), "seconds": seconds, "per_s": len(paths) / seconds}


def raw_stow_benchmark(database_url: str, paths: list[Path]) -> dict[str, float]:
    """pydicom parse + one INSERT per instance of the same attributes, committed per batch."""
    import psycopg
    import pydicom

    from apps.medical.dicom_json import BULK_DATA_THRESHOLD, _bulk_uri, index_attributes

    with psycopg.connect(database_url) as conn:
        conn.execute(
            "CREATE TABLE bench_raw (sop text PRIMARY KEY, study text, series text, patient_id text, "
            "patient_name text, study_date text, modality text, instance_number int, sha256 text, attributes jsonb)"
        )
        conn.commit()
        started = time.perf_counter()
        for start in range(0, len(paths), STOW_BATCH):
            with conn.cursor() as cursor:
                for path in paths[start : start + STOW_BATCH]:
                    data = path.read_bytes()
                    dataset = pydicom.dcmread(io.BytesIO(data))
                    index = index_attributes(dataset)
                    cursor.execute(
                        "INSERT INTO bench_raw VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            str(dataset.SOPInstanceUID),
                            str(dataset.StudyInstanceUID),
                            str(dataset.SeriesInstanceUID),
                            index.patient["patient_id"],
                            index.patient["patient_name"],
                            index.study["study_date"],
                            index.series["modality"],
                            index.instance["instance_number"],
                            "",
                            # pydicom's own DICOM JSON (the archive's dataset_attributes writes the
                            # same, faster: tests/medical/test_dicom_json.py)
                            json.dumps(
                                dataset.to_json_dict(
                                    bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_bulk_uri
                                )
                            ),
                        ),
                    )
            conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_raw")
        conn.commit()
    return {"seconds": seconds, "per_s": len(paths) / seconds}


# --- 3. QIDO ------------------------------------------------------------------------------------


def index_fill(org: Any, count: int) -> list[str]:
    """`count` studies (one series each) bulk-inserted into the index; returns their patient ids."""
    from pydicom.uid import generate_uid

    from apps.medical.models import Patient, Series, Study

    names = ["SMITH^JOHN", "DOE^JANE", "GARCIA^MARIA", "MUELLER^HANS", "TANAKA^YUKI", "NGUYEN^AN"]
    patients = Patient.objects.bulk_create(
        Patient(organization=org, patient_id=f"PID{i:06d}", patient_name=f"{names[i % len(names)]}{i}")
        for i in range(count)
    )
    studies = Study.objects.bulk_create(
        Study(
            organization=org,
            patient=patient,
            study_instance_uid=generate_uid(),
            study_date=f"20{10 + i % 15:02d}{1 + i % 12:02d}{1 + i % 28:02d}",
            study_time="101500",
            accession_number=f"ACC{i:07d}",
            study_description="CT CHEST" if i % 2 else "MR BRAIN",
            modalities_in_study="CT" if i % 2 else "MR",
            number_of_series=1,
            number_of_instances=1,
        )
        for i, patient in enumerate(patients)
    )
    Series.objects.bulk_create(
        Series(
            organization=org,
            study=study,
            series_instance_uid=generate_uid(),
            modality=study.modalities_in_study,
            number_of_instances=1,
        )
        for study in studies
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return [patient.patient_id for patient in patients]


def qido_benchmark(port: int, key: str, patient_ids: list[str], requests: int) -> dict[str, float]:
    queries = [
        "/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060",
        "/studies?limit=25&PatientName=*SMITH*",
        "/studies?limit=25&StudyDate=20200101-20201231&ModalitiesInStudy=CT",
        "/studies?00100020={pid}",
        "/studies?AccessionNumber=ACC0000{n}*",
    ]
    ours, floor = [], []
    for i in range(requests):
        query = queries[i % len(queries)].format(pid=patient_ids[(i * 7919) % len(patient_ids)], n=i % 10)
        status, ms = timed_request(port, "GET", ROOT + query, key)
        if status != 200:
            raise RuntimeError(f"QIDO {query} answered {status}")
        ours.append(ms)
        floor.append(timed_request(port, "GET", FLOOR_PATH, key)[1])
    p50, p99 = _percentiles(ours)
    floor_p50, floor_p99 = _percentiles(floor)
    return {"p50_ms": p50, "p99_ms": p99, "floor_p50_ms": floor_p50, "floor_p99_ms": floor_p99}


# --- 4. WADO, 5. rendered ------------------------------------------------------------------------


def wado_benchmark(port: int, key: str, study_uid: str, series_uid: str, stored: list[Path], repeat: int) -> dict:
    path = f"{ROOT}/studies/{study_uid}/series/{series_uid}"
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    sizes: list[int] = []

    def ours() -> None:
        status, data = _request(port, "GET", path, key, Accept=accept)
        if status != 200:
            raise RuntimeError(f"WADO answered {status}: {data[:300]!r}")
        sizes.append(len(data))

    def raw() -> None:
        for stored_path in stored:
            with stored_path.open("rb") as handle:
                while handle.read(1 << 20):
                    pass

    ours_s, raw_s = median_of(ours, repeat), median_of(raw, repeat)
    megabytes = sum(path.stat().st_size for path in stored) / 1e6
    return {"mb": megabytes, "ours_mb_s": megabytes / ours_s, "raw_mb_s": megabytes / raw_s}


def rendered_benchmark(port: int, key: str, instance_path: str, source: Path, requests: int) -> dict[str, float]:
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ours = []
    for _ in range(requests):
        status, ms = timed_request(port, "GET", f"{ROOT}/{instance_path}/rendered", key)
        if status != 200:
            raise RuntimeError(f"rendered answered {status}")
        ours.append(ms)
    raw = []
    for _ in range(requests):
        started = time.perf_counter()
        dataset = pydicom.dcmread(source)
        values = apply_voi_lut(apply_modality_lut(dataset.pixel_array, dataset), dataset).astype(np.float32)
        low, high = float(values.min()), float(values.max())
        pixels = ((values - low) / max(high - low, 1.0) * 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=90)
        raw.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": statistics.median(ours), "raw_p50_ms": statistics.median(raw)}


# --- Run ------------------------------------------------------------------------------------------


def _listener_benchmark(paths: list[Path]) -> dict[str, Any] | str:
    try:
        from benchmarks import medical_listener
    except ImportError:
        return "skipped: benchmarks/medical_listener.py is not there yet"
    runner = getattr(medical_listener, "compare", None)
    if runner is None:
        return "skipped: benchmarks.medical_listener has no compare(paths)"
    result: dict[str, Any] = runner(paths)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=PG_SERVER, help="a PostgreSQL server (no database name)")
    parser.add_argument("--quick", action="store_true", help="100 instances, 2,000 studies, 50 requests")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.studies, args.requests, args.repeat = 100, 2_000, 50, 1
    started = time.perf_counter()
    with django_on_throwaway_database(args.database_url, "tessera_bench_medical") as (var_dir, database_url):
        results = _run(var_dir, database_url, args)
    print(f"\n## Medical archive benchmark ({'--quick' if args.quick else 'full'}; medians)\n")
    print(_table(results))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


def _run(var_dir: Path, database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    from apps.medical.models import Instance
    from core.tenancy.actors import Actor
    from core.tenancy.services import api_key_create, organization_create

    org = organization_create(slug="bench", name="Bench")[0]
    key = api_key_create(actor=Actor.system(org), name="bench", scopes=("medical",)).raw_key
    results: dict[str, Any] = {}
    source_folder = var_dir / "source"
    source_folder.mkdir()
    paths = ct_instances(args.instances, source_folder)
    print(f"PostgreSQL; {len(paths)} CT instances of {paths[0].stat().st_size / 1e3:.0f} kB", flush=True)

    results["raw_stow"] = raw_stow_benchmark(database_url, paths)
    with gunicorn_server(var_dir, key, FLOOR_PATH, threads=2) as port:
        results["stow"] = stow_benchmark(port, key, paths)
        print(
            f"1. STOW: {results['stow']['per_s']:.0f} instances/s (raw {results['raw_stow']['per_s']:.0f})", flush=True
        )
        instance = Instance.objects.select_related("series__study").order_by("instance_number").first()
        assert instance is not None
        study_uid = instance.series.study.study_instance_uid
        series_uid = instance.series.series_instance_uid
        media = var_dir / "media"
        stored = [media / name for name in Instance.objects.order_by("instance_number").values_list("file", flat=True)]
        results["wado"] = wado_benchmark(port, key, study_uid, series_uid, stored, args.repeat)
        print(f"4. WADO: {results['wado']['ours_mb_s']:.0f} MB/s", flush=True)
        instance_path = f"studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}"
        results["rendered"] = rendered_benchmark(port, key, instance_path, paths[0], args.requests)
        print(f"5. rendered: {results['rendered']['p50_ms']:.1f} ms", flush=True)
        patient_ids = index_fill(org, args.studies)
        results["qido"] = qido_benchmark(port, key, patient_ids, args.requests)
        results["qido"]["studies"] = args.studies
        print(f"3. QIDO: p50 {results['qido']['p50_ms']:.1f} ms", flush=True)
    results["listener"] = _listener_benchmark(paths)
    return results


def _table(r: dict[str, Any]) -> str:
    stow, raw = r["stow"], r["raw_stow"]
    rows = [
        "| measure | ours | raw | ratio (ours/raw) | goal |",
        "|---|---|---|---|---|",
        f"| 1. STOW-RS ingest, CT 512x512 ({stow['instances']} instances) | {stow['per_s']:.0f} inst/s | "
        f"{raw['per_s']:.0f} inst/s (pydicom + INSERT) | {stow['per_s'] / raw['per_s']:.2f}x | "
        f">= {GOALS['stow_per_s']:.0f} inst/s and >= {GOALS['stow_ratio']}x |",
    ]
    listener = r["listener"]
    if isinstance(listener, dict):
        rows.append(
            f"| 2. C-STORE through the listener | {listener['ours_per_s']:.0f} inst/s | "
            f"{listener['raw_per_s']:.0f} inst/s (pynetdicom SCP to disk) | "
            f"{listener['ours_per_s'] / listener['raw_per_s']:.2f}x | |"
        )
    else:
        rows.append(f"| 2. C-STORE through the listener | {listener} | | | |")
    q = r["qido"]
    rows.append(
        f"| 3. QIDO-RS /studies, {q['studies']:,} studies, p50 / p99 | {q['p50_ms']:.1f} / {q['p99_ms']:.1f} ms | "
        f"floor {q['floor_p50_ms']:.1f} / {q['floor_p99_ms']:.1f} ms | +{q['p50_ms'] - q['floor_p50_ms']:.1f} ms | |"
    )
    w = r["wado"]
    rows.append(
        f"| 4. WADO-RS series retrieve ({w['mb']:.0f} MB) | {w['ours_mb_s']:.0f} MB/s | "
        f"{w['raw_mb_s']:.0f} MB/s (read files) | {w['ours_mb_s'] / w['raw_mb_s']:.2f}x | |"
    )
    rendered = r["rendered"]
    rows.append(
        f"| 5. rendered frame (JPEG, 512x512) p50 | {rendered['p50_ms']:.1f} ms (HTTP) | "
        f"{rendered['raw_p50_ms']:.1f} ms (pydicom+numpy+Pillow in process) | "
        f"{rendered['raw_p50_ms'] / rendered['p50_ms']:.2f}x | |"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
