// Package vaora is the root of the vaora module: an offline-first QR scanner appliance for entrances (cmd/vaorad),
// the hub it syncs to (cmd/vaorahub) and the operator's CLI (cmd/vaoractl). This package holds no code; its test
// enforces the import rules of the layout (see deps_test.go and ../shared/ARCHITECTURE.md).
package vaora
