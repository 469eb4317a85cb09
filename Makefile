# GridAtlas: `make run` serves the demo city, `make test` runs the test suite.
# Both install whatever is missing on a Debian 12 machine (as root or with sudo), without
# Debian's recommended packages. `make stop` stops the private cluster, `make clean-db` deletes
# it; `python3 -m geo.cluster where` prints where it lives.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
APT_INSTALL := $(APT) install -y -qq --no-install-recommends
HOST ?= 127.0.0.1
PORT ?= 5000
DEMO_CUSTOMERS ?= 20000
DEMO_SEED ?= 1
VENDOR := static/vendor
VENDOR_FILES := \
	node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css \
	node_modules/leaflet.markercluster/dist/leaflet.markercluster.js \
	node_modules/leaflet.markercluster/dist/MarkerCluster.css \
	node_modules/leaflet.markercluster/dist/MarkerCluster.Default.css \
	node_modules/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js \
	node_modules/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css \
	node_modules/leaflet-realtime/dist/leaflet-realtime.js \
	node_modules/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js \
	node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css

.PHONY: run test fuzz install assets browser redis stop clean-db lint translations

run: install assets
	$(BIN)/flask --app app db upgrade
	$(BIN)/flask --app app demo --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --if-empty
	@echo "GridAtlas: http://$(HOST):$(PORT)/map/network  (sign in at /login: a first run prints the demo accounts; Ctrl-C stops the server)"
	$(BIN)/flask --app app serve --host $(HOST) --port $(PORT)

# Two processes: many tests wait (on a browser, a server starting, PostgreSQL), so two keep both
# cores busy. Each file runs whole in one of them (its module fixtures are made once).
TEST_WORKERS ?= 2
test: install assets browser redis
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Schemathesis over every operation of /openapi.json, anonymous and as each role (bench/fuzz.py):
# about 4,500 cases, a minute or two; FUZZ_ARGS="--examples 40 --seed 7" for more or others.
fuzz: install
	$(BIN)/python bench/fuzz.py $(FUZZ_ARGS)

# Compiled catalogs (.mo) are built here, never committed: each follows its .po.
CATALOGS := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))

install: $(VENV)/.installed $(CATALOGS)

translations/%.mo: translations/%.po $(VENV)/.installed
	$(BIN)/pybabel compile -f --statistics -i $< -o $@

# For developers, after adding or changing a text (docs/i18n.md): re-extract the template and
# bring every language's .po up to date; then translate the new entries and run `make install`.
translations: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k ngettext:1,2 -k _html -k ngettext_html:1,2 --ignore-dirs ".* _* node_modules vendor var tests bench" \
		--no-wrap --sort-by-file --project GridAtlas \
		--copyright-holder "GridAtlas contributors" -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-wrap --no-fuzzy-matching --ignore-obsolete

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { $(APT) update -qq && $(APT_INSTALL) python3-venv; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@echo "GridAtlas: upgrading pip in $(VENV)"
	@$(BIN)/python -m pip install -q --upgrade pip
	@echo "GridAtlas: installing GridAtlas and its Python dependencies into $(VENV) (about a minute the first time)"
	$(BIN)/python -m pip install --progress-bar on -e '.[pandapower,test]'
	@touch $@

assets: $(VENDOR)/.installed

# --ignore-scripts: no package needs one (swagger-ui-dist's dependency @scarf/scarf would phone home).
$(VENDOR)/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { $(APT) update -qq && $(APT_INSTALL) nodejs npm; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@mkdir -p $(VENDOR)/images
	cp $(VENDOR_FILES) $(VENDOR)/
	cp node_modules/leaflet/dist/images/* $(VENDOR)/images/
	@touch $@

browser:
	@[ -x /usr/bin/chromium ] || { $(APT) update -qq && $(APT_INSTALL) chromium chromium-driver; }
	@# A Chinese font, so that the Chinese pages' screenshots show characters, not boxes.
	@fc-list :lang=zh 2>/dev/null | grep -q . || { $(APT) update -qq && $(APT_INSTALL) fonts-wqy-zenhei; }

# The rate-limit test shares counts between two workers through a redis-server it starts itself
# on a free port. RUNLEVEL=1: Debian's package must not start (and enable) a service of its own.
redis:
	@command -v redis-server >/dev/null || { $(APT) update -qq && $(SUDO) env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }

# geo.cluster needs only the standard library: these work before (and without) the venv.
stop:
	@$(PYTHON) -m geo.cluster stop

clean-db:
	@$(PYTHON) -m geo.cluster remove
