"""The embedded cluster's paths and URLs (its start-up is exercised by every database test)."""
from __future__ import annotations

from pathlib import Path

from geo.cluster import Cluster
from geo.db import normalise_url


def test_socket_stays_under_the_project_when_the_path_is_short(tmp_path):
    cluster = Cluster(tmp_path / "var" / "postgres")
    assert cluster.socket_dir == (tmp_path / "var" / "postgres" / "run").resolve()
    assert f"host={cluster.socket_dir}" in cluster.url()


def test_socket_moves_to_tmp_when_the_path_is_too_long_for_a_unix_socket():
    cluster = Cluster(Path("/tmp") / ("x" * 120) / "postgres")
    assert str(cluster.socket_dir).startswith("/tmp/gridatlas-")
    assert len(str(cluster.socket_dir / ".s.PGSQL.5432")) < 107


def test_plain_postgresql_urls_use_psycopg3():
    assert normalise_url("postgresql://u:p@h:5/db").startswith("postgresql+psycopg://u:p@h:5/db")
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_a_project_in_a_private_folder_keeps_its_cluster_where_postgres_can_reach(tmp_path, monkeypatch):
    import os

    from geo.cluster import default_cluster

    private = tmp_path / "private"
    (private / "project").mkdir(parents=True)
    private.chmod(0o700)
    monkeypatch.delenv("GRIDATLAS_VAR", raising=False)
    cluster = default_cluster(private / "project")
    if os.geteuid() == 0:
        assert str(cluster.root).startswith("/var/tmp/gridatlas-")
    else:
        assert cluster.root == private / "project" / "var" / "postgres"
