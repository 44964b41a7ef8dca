// Command mkdeb builds vaora's Debian packages with nfpm used as a library: `vaora` (vaorad and vaoractl, for the
// gate device) for arm64, armhf and amd64, and `vaora-hub` (vaorahub) for amd64 and arm64. `make deb` runs it.
//
//	go run ./firmware/mkdeb -version "$(git describe --tags --always --dirty)" -out dist
//
// The binaries are built here (CGO_ENABLED=0; armhf as GOARM=6, so one package serves the Pi Zero and 1 too), and
// the packages take the unit files, udev rules, example configs and docs from the repository as they are.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkdeb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "package version: a Debian version, or `git describe --tags --always --dirty` output (made Debian-valid)")
	out := fs.String("out", "dist", "directory the .deb files are written to")
	root := fs.String("root", ".", "the repository's top directory")
	device := fs.String("device-arch", "arm64,armhf,amd64", "Debian architectures of the vaora (device) package; empty for none")
	hub := fs.String("hub-arch", "amd64,arm64", "Debian architectures of the vaora-hub package; empty for none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	v, err := debVersion(*version)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var jobs []job
	for _, a := range list(*device) {
		jobs = append(jobs, job{Package: devicePackage, Arch: a})
	}
	for _, a := range list(*hub) {
		jobs = append(jobs, job{Package: hubPackage, Arch: a})
	}
	if len(jobs) == 0 {
		return fmt.Errorf("nothing to build: -device-arch and -hub-arch are both empty")
	}
	for _, j := range jobs {
		path, err := build(ctx, *root, *out, v, j)
		if err != nil {
			return err
		}
		log.Info("package written", "path", path)
	}
	return nil
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
