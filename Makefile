SHELL := /bin/bash

# ngx_http_scep_module
#
#   make deps     install the Debian packages the project needs
#   make          build build/ngx_http_scep_module.so and the test tools
#   make test     unit tests and the t/ suite against the system nginx
#   make demo     start a TLS SCEP gateway with two back ends (demo-stop)
#   make bench    benchmarks against plain nginx and HAProxy

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
                 perl libio-socket-ssl-perl

SRCS          := $(wildcard $(CURDIR)/src/*.c $(CURDIR)/src/*.h)
TOOL_CFLAGS   := -O2 -g -Wall -Wextra -Werror

# the plain-C core: no nginx types, unit-tested and fuzzed on its own
CORE_SRCS     := src/scep_base64.c src/scep_message.c src/scep_certs.c
CORE_HDRS     := src/scep_message.h src/scep_certs.h

UNIT_TESTS    := $(patsubst t/unit/%.c,$(BUILD)/unit/%,\
                   $(wildcard t/unit/test_*.c))

FUZZ_SECONDS  ?= 60
FUZZ_CC       ?= clang
FUZZ_TARGETS  := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,\
                   $(wildcard t/fuzz/fuzz_*.c))

.PHONY: all deps module tools test unit demo demo-stop bench bench-micro \
        fuzz deps-fuzz clean

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

$(NGX_TREE)/objs/Makefile: config
	rm -rf $(NGX_TREE)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGX_TREE)
	cd $(NGX_TREE) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	    --add-dynamic-module=$(CURDIR) > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(NGX_TREE)/objs/Makefile $(SRCS)
	$(MAKE) -C $(NGX_TREE) -f objs/Makefile modules
	cp $(NGX_TREE)/objs/ngx_http_scep_module.so $@

tools: $(BUILD)/scep-msg

$(BUILD)/scep-msg: t/tools/scep-msg.c
	@mkdir -p $(BUILD)
	$(CC) $(TOOL_CFLAGS) -o $@ $< -lcrypto

$(BUILD)/unit/test_%: t/unit/test_%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)/unit
	$(CC) $(TOOL_CFLAGS) -Isrc -o $@ $< $(CORE_SRCS) -lcrypto

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

# CPU cost of the message checks, and callgrind instruction counts
bench-micro: deps tools $(BUILD)/validate-bench
	bench/micro

unit: $(UNIT_TESTS)

test: deps all unit
	prove -j$(PROVE_JOBS) t/

demo: deps module
	conf-examples/demo/start

demo-stop:
	conf-examples/demo/stop

bench: deps all
	bench/run

clean:
	rm -rf $(BUILD)
