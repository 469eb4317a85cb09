"""The embedded cluster: its paths and URLs, where it lives, stopping and removing a real one,
and how PostgreSQL gets installed (its start-up is exercised by every database test)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from geo import cluster as cluster_module
from geo.cluster import PG_BIN, Cluster, ClusterError, cluster_root, main, postgis_install_commands
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


# -- where the cluster lives ------------------------------------------------------------------

@pytest.fixture()
def open_folder():
    """A folder every user can traverse, all the way up (pytest's tmp_path is inside a private one)."""
    folder = Path(tempfile.mkdtemp(prefix="gridatlas-unit-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_cluster_lives_under_the_projects_var_folder(open_folder, monkeypatch):
    monkeypatch.delenv("GRIDATLAS_VAR", raising=False)
    (open_folder / "project").mkdir()
    for as_root in (False, True):
        assert cluster_root(open_folder / "project", as_root=as_root) == open_folder / "project" / "var" / "postgres"


def test_gridatlas_var_moves_the_cluster(open_folder, monkeypatch):
    monkeypatch.setenv("GRIDATLAS_VAR", str(open_folder / "elsewhere"))
    for as_root in (False, True):
        assert cluster_root(open_folder / "project", as_root=as_root) == open_folder / "elsewhere" / "postgres"


def test_root_in_a_private_folder_keeps_the_cluster_under_var_tmp_one_per_project(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDATLAS_VAR", raising=False)
    private = tmp_path / "root"
    for name in ("one", "two"):
        (private / name).mkdir(parents=True)
    private.chmod(0o700)
    one = cluster_root(private / "one", as_root=True)
    digest = hashlib.sha1(str(private / "one" / "var").encode()).hexdigest()[:12]
    assert one == Path("/var/tmp") / f"gridatlas-{digest}" / "postgres"
    assert cluster_root(private / "one", as_root=True) == one  # the same place every time
    assert cluster_root(private / "two", as_root=True) != one
    # Anyone but root runs the cluster as themselves: their private folder is no obstacle.
    assert cluster_root(private / "one", as_root=False) == private / "one" / "var" / "postgres"


def test_the_cli_prints_where_the_cluster_is_and_says_what_stop_and_remove_did(open_folder, monkeypatch, capsys):
    monkeypatch.setenv("GRIDATLAS_VAR", str(open_folder / "var"))
    where = open_folder / "var" / "postgres"
    assert main(["where"]) == 0
    assert capsys.readouterr().out == f"{where}\n"
    assert main(["stop"]) == 0
    assert capsys.readouterr().out == f"no cluster running in {where}\n"
    assert main(["remove"]) == 0
    assert capsys.readouterr().out == f"no cluster in {where}\n"
    assert main(["start"]) == 2 and main([]) == 2


def test_remove_refuses_a_folder_that_holds_more_than_a_cluster(tmp_path):
    (tmp_path / "postgres" / "data").mkdir(parents=True)
    (tmp_path / "postgres" / "thesis.tex").write_text("mine")
    with pytest.raises(ClusterError, match="thesis.tex"):
        Cluster(tmp_path / "postgres").remove()
    assert (tmp_path / "postgres" / "thesis.tex").exists()


# -- installing PostgreSQL --------------------------------------------------------------------
def test_postgis_is_installed_without_recommends_and_with_its_environment_through_sudo():
    update, install = postgis_install_commands(is_root=False)
    assert update[:4] == ["sudo", "env", "DEBIAN_FRONTEND=noninteractive", "UCF_FORCE_CONFFOLD=1"]
    assert update[-3:] == ["apt-get", "update", "-qq"]
    assert install[install.index("apt-get"):] == [
        "apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql-15-postgis-3"]
    as_root = postgis_install_commands(is_root=True)
    assert as_root[1][0] == "env" and "--no-install-recommends" in as_root[1]


def test_debians_main_cluster_is_disabled_only_on_a_machine_without_createcluster_conf(tmp_path):
    conf = tmp_path / "postgresql-common" / "createcluster.conf"
    assert cluster_module._disable_main_cluster(True, conf) is True
    settings = [line for line in conf.read_text().splitlines() if line and not line.startswith("#")]
    assert settings == ["create_main_cluster = false"]
    assert conf.stat().st_mode & 0o777 == 0o644
    conf.write_text("create_main_cluster = true\n")  # someone's own configuration: left alone
    assert cluster_module._disable_main_cluster(True, conf) is False
    assert conf.read_text() == "create_main_cluster = true\n"


def test_installing_writes_createcluster_conf_before_apt_get_runs(tmp_path, monkeypatch):
    conf = tmp_path / "createcluster.conf"
    calls = []
    monkeypatch.setattr(cluster_module, "CREATECLUSTER_CONF", conf)
    monkeypatch.setattr(cluster_module, "PG_BIN", tmp_path / "missing")
    monkeypatch.setattr(cluster_module.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(cluster_module, "_disable_main_cluster",
                        lambda is_root: calls.append(("conf", is_root)) or True)
    monkeypatch.setattr(cluster_module.subprocess, "run",
                        lambda argv, **kw: calls.append(("run", argv)) or subprocess.CompletedProcess(argv, 0))
    monkeypatch.setattr(Cluster, "_ensure_root_user", lambda self: None)
    Cluster(tmp_path / "postgres")._ensure_postgis_installed()
    assert [c[0] for c in calls] == ["conf", "run", "run"]
    assert "--no-install-recommends" in calls[2][1]


# -- a real throwaway cluster -----------------------------------------------------------------
@pytest.fixture()
def throwaway_cluster(open_folder):
    """A real cluster's place (as root it runs as postgres, which could not enter tmp_path)."""
    # make test installs PostgreSQL for the embedded cluster: missing binaries are a broken install,
    # unless the tests were pointed at another database (TEST_DATABASE_URL) on a machine without them.
    if not (PG_BIN / "initdb").exists():
        assert os.environ.get("TEST_DATABASE_URL"), f"no PostgreSQL binaries in {PG_BIN}: run make test"
        pytest.skip(f"no PostgreSQL binaries in {PG_BIN}, and the tests use TEST_DATABASE_URL")
    cluster = Cluster(open_folder / "postgres")
    yield cluster
    if (cluster.data_dir / "postmaster.pid").exists():  # a failed test's server: end it
        argv = [str(PG_BIN / "pg_ctl"), "stop", "-m", "immediate", "-D", str(cluster.data_dir)]
        subprocess.run((["runuser", "-u", cluster.user, "--"] if os.geteuid() == 0 else []) + argv,
                       capture_output=True)


def test_a_real_cluster_is_stopped_and_removed(throwaway_cluster):
    cluster = throwaway_cluster
    assert cluster.stop() is False and cluster.remove() is False  # nothing there yet
    cluster._initdb()
    cluster.start()
    assert cluster.is_running()
    assert cluster.stop() is True
    assert not cluster.is_running() and cluster.stop() is False
    cluster.start()
    assert cluster.remove() is True
    assert not cluster.root.exists() and not cluster.is_running()
    assert cluster.remove() is False
