SHELL := /bin/bash

# ngx_http_scep_module
#
#   make deps     install the Debian packages the project needs
#   make          build build/ngx_http_scep_module.so and the test tools
#   make test     unit tests and the t/ suite against the system nginx
#   make interop  certmonger, strongSwan's pki and scepclient through the
#                 gateway: a table of what each does (t/141_interop.t)
#   make demo     start a TLS SCEP gateway with two back ends (demo-stop)
#   make bench    benchmarks against plain nginx and HAProxy
#   make deb      the Debian package for the system nginx (build/*.deb)
#   make compat   build the module against other nginx versions (below)

NGINX         ?= /usr/sbin/nginx
NGINX_SRC     ?= /usr/share/nginx/src
BUILD         := $(CURDIR)/build
MODULE        := $(BUILD)/ngx_http_scep_module.so
NGX_TREE      := $(BUILD)/nginx
PROVE_JOBS    ?= 3

# Debian's own compiler flags for nginx, so the module matches its ABI
NGX_CC_OPT    := -g -O2 -fstack-protector-strong -Wformat \
                 -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2
NGX_LD_OPT    := -Wl,-z,relro -Wl,-z,now -fPIC

DEB_PACKAGES  := nginx nginx-dev libssl-dev libjansson-dev libpcre2-dev \
                 zlib1g-dev scep wrk haproxy curl openssl gcc make \
                 perl libio-socket-ssl-perl chromium prometheus \
                 debhelper dpkg-dev lintian keepalived iproute2 \
                 libnginx-mod-http-headers-more-filter nodejs \
                 certmonger dbus-daemon strongswan-pki \
                 libstrongswan-standard-plugins libstrongswan-extra-plugins

SRCS          := $(wildcard $(CURDIR)/src/*.c $(CURDIR)/src/*.h) \
                 $(wildcard $(CURDIR)/src/dashboard/*)
TOOL_CFLAGS   := -O2 -g -Wall -Wextra -Werror

# the plain-C core: no nginx types, unit-tested and fuzzed on its own
CORE_SRCS     := src/scep_base64.c src/scep_query.c src/scep_message.c \
                 src/scep_ber.c src/scep_cms.c src/scep_rules.c \
                 src/scep_verify.c src/scep_certs.c src/scep_der.c \
                 src/scep_certrep.c src/scep_renewal.c
CORE_HDRS     := src/scep_message.h src/scep_message_int.h src/scep_certs.h \
                 src/scep_der.h src/scep_certrep.h src/scep_renewal.h

# make test-asan builds them a second time with the sanitizers
UNIT_CC       ?= $(CC)
UNIT_CFLAGS   ?= $(TOOL_CFLAGS)
UNIT_DIR      ?= $(BUILD)/unit
UNIT_TESTS    := $(patsubst t/unit/%.c,$(UNIT_DIR)/%,\
                   $(wildcard t/unit/test_*.c))

FUZZ_SECONDS  ?= 60
FUZZ_CC       ?= clang
FUZZ_TARGETS  := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,\
                   $(wildcard t/fuzz/fuzz_*.c))

# the fuzz targets without libFuzzer, with gcc's sanitizers: make test
# replays the inputs of past findings (t/fuzz/regress/) through them
# (make test-asan builds them with clang as well, whose UBSan sees more)
REGRESS_CC    ?= $(CC)
REGRESS_DIR   ?= $(BUILD)/regress
REGRESS       := $(patsubst t/fuzz/%.c,$(REGRESS_DIR)/%,\
                   $(wildcard t/fuzz/fuzz_*.c))
REGRESS_FLAGS := -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
                 -fsanitize=address,undefined -fno-sanitize-recover=all

.PHONY: all deps module tools test interop unit regress check-js \
        demo demo-stop bench bench-micro fuzz deps-fuzz deb deps-deb clean

all: module tools

# installs only what is missing, so it is quick and safe to run again
deps:
	@missing=; for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
	        | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi

module: $(MODULE)

$(NGX_TREE)/objs/Makefile: config config.make
	rm -rf $(NGX_TREE)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGX_TREE)
	cd $(NGX_TREE) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	    --add-dynamic-module=$(CURDIR) > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }

# a new file, not one rewritten in place under an nginx that has it
# mapped: its workers would crash at their next fork
$(MODULE): $(NGX_TREE)/objs/Makefile $(SRCS)
	$(MAKE) -C $(NGX_TREE) -f objs/Makefile modules
	cp $(NGX_TREE)/objs/ngx_http_scep_module.so $@.tmp
	mv -f $@.tmp $@

tools: $(BUILD)/scep-msg

$(BUILD)/scep-msg: t/tools/scep-msg.c
	@mkdir -p $(BUILD)
	$(CC) $(TOOL_CFLAGS) -o $@ $< -lcrypto

# what the unit tests share: TAP output, CMS helpers
UNIT_LIB      := t/unit/tap.c t/unit/cms.c
UNIT_LIB_HDRS := t/unit/tap.h t/unit/cms.h

$(UNIT_DIR)/test_%: t/unit/test_%.c $(UNIT_LIB) $(UNIT_LIB_HDRS) \
                    $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(UNIT_DIR)
	$(UNIT_CC) $(UNIT_CFLAGS) -Isrc -It/unit -o $@ $< $(UNIT_LIB) \
	    $(CORE_SRCS) -lcrypto

$(BUILD)/fuzz/fuzz_%: t/fuzz/fuzz_%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Isrc -o $@ $< $(CORE_SRCS) -lcrypto

# each target runs FUZZ_SECONDS, seeded with real messages
fuzz: deps-fuzz tools $(FUZZ_TARGETS)
	t/fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

deps-fuzz:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="clang libclang-rt-14-dev"

$(BUILD)/validate-bench: bench/validate.c $(CORE_SRCS) $(CORE_HDRS)
	$(CC) -O2 -g -Isrc -o $@ $< $(CORE_SRCS) -lcrypto

$(BUILD)/certrep-bench: bench/certrep.c $(CORE_SRCS) $(CORE_HDRS)
	$(CC) -O2 -g -Isrc -o $@ $< $(CORE_SRCS) -lcrypto

# CPU cost of the message checks, and callgrind instruction counts; a
# checked CertRep against its crypto floor
bench-micro: deps tools $(BUILD)/validate-bench $(BUILD)/certrep-bench
	bench/micro

unit: $(UNIT_TESTS)

regress: $(REGRESS)

$(REGRESS_DIR)/fuzz_%: t/fuzz/fuzz_%.c t/fuzz/replay.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(REGRESS_DIR)
	$(REGRESS_CC) $(REGRESS_FLAGS) -Isrc -o $@ $< t/fuzz/replay.c $(CORE_SRCS) \
	    -lcrypto

# the status page's script parses: a syntax error there would leave the
# page blank in a browser, with nothing in nginx's logs
check-js:
	node --check src/dashboard/dashboard.js

test: deps all unit regress check-js
	prove -j$(PROVE_JOBS) t/

# the clients of other makers, one after another, and the table.  As
# root only: make test lets t/141 skip itself (it needs namespaces),
# make interop says so and fails, here or when the test skipped anyway.
interop:
	@if [ "$$(id -u)" != 0 ]; then \
	    echo '*** make interop needs root (network and mount' \
	         'namespaces): run it as root, for instance with sudo' >&2; \
	    exit 1; \
	fi
	$(MAKE) deps module
	@out=$$(mktemp) && trap 'rm -f "$$out"' EXIT && \
	    perl t/141_interop.t 2>&1 | tee "$$out"; \
	    rc=$${PIPESTATUS[0]}; \
	    if grep -q '^1\.\.0 # SKIP' "$$out"; then \
	        echo '*** make interop: t/141_interop.t skipped itself, no' \
	             'table' >&2; \
	        exit 1; \
	    fi; \
	    exit $$rc

demo: deps module
	conf-examples/demo/start

demo-stop:
	conf-examples/demo/stop

bench: deps all $(BUILD)/validate-bench $(BUILD)/certrep-bench
	bench/run

# build/libnginx-mod-http-scep_VERSION_ARCH.deb, built by debhelper
# with nginx-dev's dh-sequence-nginx (packaging/)
deb: deps-deb
	packaging/build-deb $(BUILD)

deps-deb:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="nginx nginx-dev \
	    libssl-dev libjansson-dev libpcre2-dev zlib1g-dev debhelper dpkg-dev"

clean:
	rm -rf $(BUILD)

# Memory checks (t/sanitize/):
#
#   make test-asan       the whole t/ suite against a module built with
#                        AddressSanitizer and UndefinedBehaviorSanitizer
#                        (build/asan/), the runtime preloaded into nginx only
#   make test-valgrind   the request-path tests with one nginx process under
#                        valgrind, against build/ngx_http_scep_module.so
#
# clang, not gcc, for the sanitizers: gcc's UBSan runtime, loaded beside
# its ASan one, writes its reports to stderr whatever log_path says;
# clang's ASan runtime has UBSan in it and writes both where told.
# -Wno-error: nginx's -Werror for clang would make clang's own warnings
# fatal here, where only the sanitizers' findings count.

ASAN_CC       ?= clang
ASAN_BUILD    := $(BUILD)/asan
ASAN_TREE     := $(ASAN_BUILD)/nginx
ASAN_MODULE   := $(ASAN_BUILD)/ngx_http_scep_module.so
ASAN_FLAGS    := -fsanitize=address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=undefined
ASAN_IGNORE   := $(CURDIR)/t/sanitize/asan.ignorelist
ASAN_CC_OPT   := -g -O1 $(ASAN_FLAGS) -fsanitize-ignorelist=$(ASAN_IGNORE) \
                 -Wformat -Werror=format-security -fPIC -Wno-error
ASAN_LD_OPT   := -Wl,-z,relro -Wl,-z,now -fPIC $(ASAN_FLAGS)
# 2 parallel tests unless PROVE_JOBS is given on the command line or in
# the environment
SANITIZE_JOBS ?= $(if $(filter command line environment,\
                   $(origin PROVE_JOBS)),$(PROVE_JOBS),2)

# test-valgrind runs every t/*.t but these: 000 runs no nginx; 070 and
# 072 expect health probes to finish, and to fail for the reason they
# test, within a 300ms timeout, which valgrind's speed does not allow;
# 074, 075, 077 and 080 reload nginx, which nginx does not support with
# master_process off (080 also needs two workers); 075 and 095 load nginx
# with wrk and with 10,000 connections under 2 s timeouts; 076 and 079
# time probes and passive failures to the second, 079 with four workers;
# 078 measures a worker's memory (valgrind's own heap would hide a leak);
# 110 measures failover times of two gateways against bounds of a few
# seconds; 120, 122 and 123 expect probes to pass and fail within 200 ms
# timeouts, as 070 does; 124 reloads
VALGRIND_SKIP ?= t/000_unit.t t/070_health.t t/072_health_tls.t \
                 t/074_reload_records.t t/075_failover.t \
                 t/076_peer_zone.t t/077_reload_zone.t \
                 t/078_keepalive_skip.t t/079_probe_lease.t \
                 t/080_status.t t/095_hostile.t t/110_ha_pair.t \
                 t/120_ca_cache.t t/122_ca_cache_disagree.t \
                 t/123_ca_cache_nomem.t t/124_ca_cache_reload.t
VALGRIND_TESTS ?= $(filter-out $(VALGRIND_SKIP),$(sort $(wildcard t/*.t)))

.PHONY: deps-asan deps-valgrind module-asan test-asan test-valgrind

deps-asan:
	@$(MAKE) --no-print-directory deps \
	    DEB_PACKAGES="clang libclang-rt-14-dev"

deps-valgrind:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="valgrind libc6-dbg"

# the same configure as the module's, with the sanitizers' flags
$(ASAN_TREE)/objs/Makefile: config config.make $(ASAN_IGNORE)
	rm -rf $(ASAN_TREE)
	mkdir -p $(ASAN_BUILD)
	cp -r $(NGINX_SRC) $(ASAN_TREE)
	cd $(ASAN_TREE) && . ./conf_flags && ASAN_OPTIONS=detect_leaks=0 \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc=$(ASAN_CC) \
	    --with-cc-opt="$(ASAN_CC_OPT)" --with-ld-opt="$(ASAN_LD_OPT)" \
	    --add-dynamic-module=$(CURDIR) > $(ASAN_BUILD)/configure.log 2>&1 \
	    || { tail -20 $(ASAN_BUILD)/configure.log; exit 1; }

# a new file, not one rewritten in place under an nginx that has it loaded
$(ASAN_MODULE): $(ASAN_TREE)/objs/Makefile $(SRCS)
	$(MAKE) -C $(ASAN_TREE) -f objs/Makefile modules
	cp $(ASAN_TREE)/objs/ngx_http_scep_module.so $@.tmp
	mv -f $@.tmp $@

module-asan: deps-asan $(ASAN_MODULE)

test-asan: deps deps-asan tools unit regress module-asan
	$(MAKE) --no-print-directory regress REGRESS_CC=$(ASAN_CC) \
	    REGRESS_DIR=$(ASAN_BUILD)/regress
	$(MAKE) --no-print-directory unit UNIT_CC=$(ASAN_CC) \
	    UNIT_CFLAGS="$(REGRESS_FLAGS)" UNIT_DIR=$(ASAN_BUILD)/unit
	TEST_REGRESS_DIR=$(ASAN_BUILD)/regress TEST_UNIT_DIR=$(ASAN_BUILD)/unit \
	PROVE_JOBS=$(SANITIZE_JOBS) ASAN_CC=$(ASAN_CC) t/sanitize/asan \
	    $(ASAN_MODULE) $(ASAN_BUILD)/reports t/

test-valgrind: deps deps-valgrind all
	PROVE_JOBS=$(SANITIZE_JOBS) t/sanitize/valgrind $(MODULE) \
	    $(BUILD)/valgrind $(VALGRIND_TESTS)


# Other nginx versions (t/compat/):
#
#   make compat       the module, with nginx's -Werror, against the system
#                     nginx-dev (1.22.1 on Debian 12) and the nginx-dev
#                     packages of Debian 13 (1.26.3) and Debian unstable
#                     (1.30.6), unpacked under build/compat/VERSION
#   make test-nginx   nginx NGINX_VERSION (1.26.3) built from source under
#                     build/nginx-VERSION, then the t/ suite against it:
#                     with the module as a dynamic module, then built in
#                     (TEST_SCEP_STATIC=1)
#
# The packages and the source come from this machine's Debian archive
# (the URI its apt configuration names) through a private apt list and
# state under build/apt: nothing under /etc changes, nothing is installed.

COMPAT        := $(BUILD)/compat
NGINX_VERSION ?= 1.26.3
NGX_VERSION_BUILD := $(BUILD)/nginx-$(NGINX_VERSION)
COMPAT_ENV    := CC_OPT="$(NGX_CC_OPT)" LD_OPT="$(NGX_LD_OPT)" \
                 APT_DIR=$(BUILD)/apt JOBS=$$(nproc)

.PHONY: compat nginx-version test-nginx

compat: deps module
	$(COMPAT_ENV) t/compat/dev $(COMPAT)

nginx-version: deps
	$(COMPAT_ENV) t/compat/source $(NGX_VERSION_BUILD) $(NGINX_VERSION)

test-nginx: deps tools unit regress nginx-version
	TEST_NGINX_BINARY=$(NGX_VERSION_BUILD)/dynamic/objs/nginx \
	TEST_SCEP_MODULE=$(NGX_VERSION_BUILD)/dynamic/objs/ngx_http_scep_module.so \
	    prove -j$(PROVE_JOBS) t/
	TEST_NGINX_BINARY=$(NGX_VERSION_BUILD)/static/objs/nginx \
	TEST_SCEP_STATIC=1 prove -j$(PROVE_JOBS) t/
