"""Turn a docker-archive stream (stdin) into an OCI archive (stdout) holding only the blobs
containerd lacks, for `ctr images import -`.

hack/images/build.sh pipes `buildah push IMG docker-archive:/dev/stdout` through this: a
rebuilt trainer image differs from the last one in its small top layer only, and containerd
then ingests that layer instead of all ~6 GB again. Layers come out of buildah uncompressed,
so a layer's digest is the same in both formats. containerd's OCI importer writes the blobs it
is given and resolves the image's manifest and config; the layers it already has stay as they
are.

    python3 missing_blobs.py IMAGE_REF HAVE_FILE   (HAVE_FILE: `ctr content ls -q` output)
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import tarfile
from pathlib import Path

LAYER = re.compile(r"^([0-9a-f]{64})\.tar$")
CONFIG = re.compile(r"^([0-9a-f]{64})\.json$")
OCI = "application/vnd.oci.image"


def _add(out: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))


def main() -> int:
    ref, have_file = sys.argv[1], sys.argv[2]
    have = set(Path(have_file).read_text().split())
    sizes: dict[str, int] = {}
    config: bytes | None = None
    manifest: list[dict[str, object]] | None = None
    # Streams (no seeking): the layers pass through once. Closed explicitly, at the end.
    source = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")  # noqa: SIM115
    out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")  # noqa: SIM115
    for member in source:
        name = member.name.removeprefix("./")
        if layer := LAYER.match(name):
            digest = f"sha256:{layer.group(1)}"
            sizes[digest] = member.size
            if digest not in have:
                blob = source.extractfile(member)
                assert blob is not None
                info = tarfile.TarInfo(f"blobs/sha256/{layer.group(1)}")
                info.size = member.size
                out.addfile(info, blob)
        elif CONFIG.match(name):
            blob = source.extractfile(member)
            assert blob is not None
            config = blob.read()
        elif name == "manifest.json":
            blob = source.extractfile(member)
            assert blob is not None
            manifest = json.load(blob)
    if config is None or not manifest:
        print("missing_blobs.py: no config or manifest.json in the docker archive", file=sys.stderr)
        return 1
    paths = [str(p).removeprefix("./") for p in manifest[0]["Layers"]]  # type: ignore[union-attr]
    layers = [LAYER.match(p) for p in paths]
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    oci_manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": f"{OCI}.manifest.v1+json",
            "config": {
                "mediaType": f"{OCI}.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": f"{OCI}.layer.v1.tar",
                    "digest": f"sha256:{m.group(1)}",
                    "size": sizes[f"sha256:{m.group(1)}"],
                }
                for m in layers
                if m is not None
            ],
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(oci_manifest).hexdigest()
    _add(out, f"blobs/sha256/{config_digest[7:]}", config)
    _add(out, f"blobs/sha256/{manifest_digest[7:]}", oci_manifest)
    _add(out, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": f"{OCI}.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(oci_manifest),
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                },
            }
        ],
    }
    _add(out, "index.json", json.dumps(index).encode())
    out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
