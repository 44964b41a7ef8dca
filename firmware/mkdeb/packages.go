package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// pkg describes one package: what it holds, independent of the architecture.
type pkg struct {
	Name        string
	Description string
	Bins        []string // commands under cmd/, installed as /usr/bin/NAME
	Units       []string // files of systemd/, installed in /lib/systemd/system
	Configs     map[string]string
	Docs        []doc
	Extra       []file
	Scripts     string // directory of postinst, prerm, postrm under the repository's top
	Depends     []string
	Recommends  []string
	Suggests    []string
}

type doc struct{ Src, Dst string }

type file struct{ Src, Dst string }

var devicePackage = pkg{
	Name: "vaora",
	Description: "vaora gate device: offline-first QR entry reader\n" +
		"vaorad reads personal QR codes from a camera or a handheld reader, decides at once, keeps every\n" +
		"accepted entry on the device (sealed) and syncs it to the hub; vaoractl is the operator's tool.",
	Bins:  []string{"vaorad", "vaoractl"},
	Units: []string{"vaorad.service", "vaora-kiosk.service"},
	Configs: map[string]string{
		"configs/vaorad.example.yaml": "/etc/vaora/vaorad.yaml",
	},
	Docs: []doc{
		{Src: "README.md", Dst: "/usr/share/doc/vaora/README.md"},
		{Src: "docs/installing.md", Dst: "/usr/share/doc/vaora/installing.md"},
		{Src: "docs/operators.md", Dst: "/usr/share/doc/vaora/operators.md"},
		{Src: "docs/keys.md", Dst: "/usr/share/doc/vaora/keys.md"},
		{Src: "docs/passes.md", Dst: "/usr/share/doc/vaora/passes.md"},
		{Src: "docs/reason-codes.md", Dst: "/usr/share/doc/vaora/reason-codes.md"},
		{Src: "docs/provisioning.md", Dst: "/usr/share/doc/vaora/provisioning.md"},
	},
	Extra: []file{
		{Src: "firmware/udev/99-vaora.rules", Dst: "/lib/udev/rules.d/99-vaora.rules"},
		{Src: "configs/profiles/entrance.yaml", Dst: "/usr/share/vaora/profiles/entrance.yaml"},
		{Src: "configs/profiles/kiosk.yaml", Dst: "/usr/share/vaora/profiles/kiosk.yaml"},
		{Src: "configs/profiles/factory-gate.yaml", Dst: "/usr/share/vaora/profiles/factory-gate.yaml"},
	},
	Scripts: "firmware/debian/vaora",
	// passwd: useradd and usermod, used by postinst.
	Depends:    []string{"passwd"},
	Recommends: []string{"udev", "alsa-utils"},
	Suggests:   []string{"cage", "chromium"},
}

var hubPackage = pkg{
	Name: "vaora-hub",
	Description: "vaora hub: ingest, storage and live web view of vaora gate devices\n" +
		"vaorahub receives the entries of vaora devices over MQTT (embedded broker or Mosquitto), stores them\n" +
		"(SQLite or PostgreSQL) and shows them live and masked; it publishes stop lists and device configs.",
	Bins:  []string{"vaorahub"},
	Units: []string{"vaorahub.service"},
	Configs: map[string]string{
		"configs/vaorahub.example.yaml": "/etc/vaora/vaorahub.yaml",
	},
	Docs: []doc{
		{Src: "README.md", Dst: "/usr/share/doc/vaora-hub/README.md"},
		// vaorahub.service links here; no other package installs this file.
		{Src: "docs/hub.md", Dst: "/usr/share/doc/vaora/hub.md"},
		{Src: "docs/operators.md", Dst: "/usr/share/doc/vaora-hub/operators.md"},
		{Src: "docs/keys.md", Dst: "/usr/share/doc/vaora-hub/keys.md"},
		{Src: "docs/provisioning.md", Dst: "/usr/share/doc/vaora-hub/provisioning.md"},
	},
	Extra: []file{
		{Src: "configs/mosquitto.example.conf", Dst: "/usr/share/vaora-hub/mosquitto.example.conf"},
		{Src: "configs/mosquitto-secure.example.conf", Dst: "/usr/share/vaora-hub/mosquitto-secure.example.conf"},
		{Src: "configs/mosquitto-dynsec-device-role.example.json", Dst: "/usr/share/vaora-hub/mosquitto-dynsec-device-role.example.json"},
	},
	Scripts:    "firmware/debian/vaora-hub",
	Suggests:   []string{"mosquitto", "postgresql"},
	Recommends: nil,
}

// job is one package for one architecture.
type job struct {
	Package pkg
	Arch    string // Debian architecture: amd64, arm64, armhf
}

// goEnv is how a Debian architecture is built: armhf as ARMv6 so the Pi Zero and 1 run it (Raspberry Pi OS's
// armhf is ARMv6 too).
func goEnv(arch string) ([]string, error) {
	switch arch {
	case "amd64":
		return []string{"GOARCH=amd64"}, nil
	case "arm64":
		return []string{"GOARCH=arm64"}, nil
	case "armhf":
		return []string{"GOARCH=arm", "GOARM=6"}, nil
	}
	return nil, fmt.Errorf("architecture %q: mkdeb builds amd64, arm64 and armhf", arch)
}

// build compiles the job's binaries, writes its package into out and returns the package's path.
func build(ctx context.Context, root, out, version string, j job) (string, error) {
	env, err := goEnv(j.Arch)
	if err != nil {
		return "", err
	}
	bins, err := os.MkdirTemp("", "mkdeb-"+j.Package.Name+"-"+j.Arch+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(bins)
	for _, b := range j.Package.Bins {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(bins, b), "./cmd/"+b)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), append([]string{"CGO_ENABLED=0", "GOOS=linux"}, env...)...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/%s for %s: %v\n%s", b, j.Arch, err, msg)
		}
	}
	info, err := j.Package.info(root, bins, version, j.Arch)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(out, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(nfpm.WithDefaults(info), f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("package %s for %s: %w", j.Package.Name, j.Arch, err)
	}
	return path, f.Close()
}

// info is the nfpm description of p for arch, its binaries taken from bins.
func (p pkg) info(root, bins, version, arch string) (*nfpm.Info, error) {
	var contents files.Contents
	add := func(src, dst, typ string, mode fs.FileMode) error {
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("package %s needs %s: %w", p.Name, src, err)
		}
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}})
		return nil
	}
	var errs []error
	for _, b := range p.Bins {
		errs = append(errs, add(filepath.Join(bins, b), "/usr/bin/"+b, files.TypeFile, 0o755))
	}
	for _, u := range p.Units {
		errs = append(errs, add(filepath.Join(root, "systemd", u), "/lib/systemd/system/"+u, files.TypeFile, 0o644))
	}
	for src, dst := range p.Configs {
		// noreplace: an upgrade never overwrites the site's settings; dpkg asks, or keeps them when unchanged here.
		errs = append(errs, add(filepath.Join(root, src), dst, files.TypeConfigNoReplace, 0o644))
	}
	for _, d := range p.Docs {
		errs = append(errs, add(filepath.Join(root, d.Src), d.Dst, files.TypeFile, 0o644))
	}
	for _, e := range p.Extra {
		errs = append(errs, add(filepath.Join(root, e.Src), e.Dst, files.TypeFile, 0o644))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	script := func(name string) string { return filepath.Join(root, p.Scripts, name) }
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if _, err := os.Stat(script(s)); err != nil {
			return nil, fmt.Errorf("package %s needs its maintainer script: %w", p.Name, err)
		}
	}
	return &nfpm.Info{
		Name:          p.Name,
		Arch:          arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none", // debVersion made it Debian-valid; nfpm's semver parsing would rewrite it
		Section:       "misc",
		Priority:      "optional",
		Maintainer:    "vaora maintainers <vaora@localhost>",
		Description:   strings.TrimSpace(p.Description),
		Homepage:      "https://github.com/vaora/vaora",
		License:       "proprietary",
		Overridables: nfpm.Overridables{
			Depends:    p.Depends,
			Recommends: p.Recommends,
			Suggests:   p.Suggests,
			Contents:   contents,
			Scripts: nfpm.Scripts{
				PostInstall: script("postinst"),
				PreRemove:   script("prerm"),
				PostRemove:  script("postrm"),
			},
			Deb: nfpm.Deb{Compression: "xz"},
		},
	}, nil
}
