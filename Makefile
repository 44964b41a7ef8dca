# vaora — build, test and run. `make demo` and `make test` need only Go and make.
GO        ?= go
BIN       := bin
DEMO_DIR  ?= .demo
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
export CGO_ENABLED ?= 0

.PHONY: all build test demo vet lint cross qemu-test qemu-selftest race bench bench-e2e bench-device bench-ingest bench-decode fault clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

## test: formatting, vet and every test that needs nothing but Go. Integration and browser tests are skipped with a
## notice unless VAORA_TEST_MQTT, VAORA_TEST_PG or VAORA_TEST_CHROMIUM are set (see .ci/run).
test: vet
	$(GO) test -count=1 ./...
	@[ -n "$$VAORA_TEST_MQTT" ] || echo "NOTICE: VAORA_TEST_MQTT not set: tests against a real Mosquitto were skipped (CI runs them: .ci/run)"
	@[ -n "$$VAORA_TEST_PG" ] || echo "NOTICE: VAORA_TEST_PG not set: tests against a real PostgreSQL were skipped (CI runs them: .ci/run)"
	@[ -n "$$VAORA_TEST_CHROMIUM" ] || echo "NOTICE: VAORA_TEST_CHROMIUM not set: the browser test was skipped (CI runs it: .ci/run)"
	@command -v systemd-analyze >/dev/null || echo "NOTICE: systemd-analyze not installed: the unit files were not verified (CI checks them)"

demo: build
	$(BIN)/vaoractl demo --dir $(DEMO_DIR)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

lint: vet
	$(GO) run $(STATICCHECK) ./...

## cross: vaorad for the Pi (64-bit OS, and 32-bit on ARMv6 boards such as the Pi Zero / 1).
cross:
	GOOS=linux GOARCH=arm64 $(GO) build -o $(BIN)/linux-arm64/vaorad ./cmd/vaorad
	GOOS=linux GOARCH=arm GOARM=6 $(GO) build -o $(BIN)/linux-armv6/vaorad ./cmd/vaorad

## qemu-test: the device packages' tests on the Pi's CPUs, emulated (Debian's qemu-user-static).
QEMU_PKGS := ./sync/outbox/ ./sync/wire/ ./scanner/payload/ ./scanner/handheld/ ./scanner/clock/ ./scanner/qr/ ./scanner/camera/ ./scanner/subject/ ./sync/seal/ ./scanner/feedback/ ./scanner/presence/
qemu-test:
	GOOS=linux GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static $(QEMU_PKGS)
	GOOS=linux GOARCH=arm GOARM=6 $(GO) test -count=1 -exec "qemu-arm-static -cpu arm1176" $(QEMU_PKGS)

## qemu-selftest: the Pi binaries' own `vaorad selftest` (decode, parse, outbox, seal, clock) on arm64 and ARMv6,
## emulated.
qemu-selftest: cross
	qemu-aarch64-static $(BIN)/linux-arm64/vaorad selftest
	qemu-arm-static -cpu arm1176 $(BIN)/linux-armv6/vaorad selftest

## fault: the fault suite in full (1000 SIGKILL cycles) against its own Mosquitto and PostgreSQL (needs mosquitto,
## postgresql and root to run initdb as postgres). .ci/run runs it with 200 cycles.
FAULT_CYCLES ?= 1000
fault:
	VAORA_TEST_FAULTS=1 VAORA_FAULT_CYCLES=$(FAULT_CYCLES) $(GO) test -count=1 -timeout 60m -v -run TestFaultSuite ./cmd/vaorad/ \
	  | grep -E '^(fault suite|checker|--- |ok|FAIL|PASS)|fault_test.go'

## bench-device: scan→commit latency and bytes per scan; a 1,000,000-entry drain, start-up and memory (needs mosquitto
## and postgresql).
bench-device:
	VAORA_BENCH=1 $(GO) test -count=1 -timeout 30m -v -run 'TestBench' ./cmd/vaorad/ | grep -vE '^\s+\{'

## bench-ingest: 1,000 simulated devices through a private Mosquitto into PostgreSQL (VAORA_TEST_PG or
## 127.0.0.1:5432/test): 50,000 entries/s offered, then a drain.
bench-ingest:
	VAORA_BENCH_INGEST=1 VAORA_BENCH_RATE=50000 $(GO) test -count=5 -v -timeout 30m -run TestIngestLoad ./cmd/vaorahub/
	VAORA_BENCH_INGEST=1 $(GO) test -count=5 -v -timeout 30m -run TestIngestLoad ./cmd/vaorahub/

## bench-decode: decode quality and speed beside ZXingReader and zbarimg on the zxing-java corpus, and per-frame
## times on the recorded 640×480 YUYV frames (needs zxing-cpp-tools and zbar-tools).
bench-decode:
	VAORA_BENCH=1 $(GO) test -count=1 -v -timeout 20m -run TestBenchDecodeCorpus ./cmd/vaoractl/ | grep -E 'corpus|time over|MISREAD|not read'
	VAORA_BENCH=1 $(GO) test -count=1 -v -timeout 20m -run TestFrameTimes ./scanner/qr/ | grep -E 'frame times|recorded'

## race: the race detector needs cgo (gcc).
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 5 ./sync/outbox/ ./hub/store/

## bench-e2e: scan-to-screen latency, `make demo` driven in headless Chromium, 5 runs of 5 scans (needs chromium).
bench-e2e:
	VAORA_TEST_CHROMIUM=$${VAORA_TEST_CHROMIUM:-/usr/bin/chromium} $(GO) test -count=5 -v -run TestDemoInBrowser ./cmd/vaoractl/ \
	  | grep 'scan-to-screen' | tee /dev/stderr | grep -v median | awk '{v=$$NF; if (v ~ /ms$$/) {sub(/ms$$/,"",v)} else {sub(/s$$/,"",v); v*=1000}; print v}' \
	  | sort -n | awk '{a[NR]=$$1} END {printf "scan-to-screen, all %d scans: median %d ms, min %d ms, max %d ms\n", NR, a[int((NR+1)/2)], a[1], a[NR]}'

## deb: Debian packages in dist/: vaora (vaorad, vaoractl) for arm64, armhf (ARMv6: Pi Zero and 1) and amd64, and
## vaora-hub (vaorahub) for amd64 and arm64, made with nfpm as a Go module (firmware/mkdeb). VERSION is turned into a
## Debian version: v1.2.3-4-gabc1234 → 1.2.3+4.gabc1234, a bare commit abc1234 → 0.0.0+gitabc1234.
.PHONY: deb image-standin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0)
deb:
	$(GO) run ./firmware/mkdeb -version '$(VERSION)' -out dist

## image-standin: the appliance image recipe (firmware/image/build-image.sh) run on a stand-in Raspberry Pi OS image
## it builds itself, the result read back with sfdisk, debugfs and mtools (needs root, dpkg, e2fsprogs, fdisk,
## mtools, dosfstools).
image-standin:
	VAORA_TEST_IMAGE=1 $(GO) test -count=1 -v -run TestImageStandin ./firmware/image/

clean:
	rm -rf $(BIN)
