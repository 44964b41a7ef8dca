package main

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"1.2.0", "1.2.0"},
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty"},
		{"v1.2.3~rc1-2-g0123abc", "1.2.3~rc1+2.g0123abc"},
		{"6a8a69a", "0.0.0+git6a8a69a"},
		{"6a8a69a-dirty", "0.0.0+git6a8a69a.dirty"},
		{"0.0.0+git6a8a69a.dirty", "0.0.0+git6a8a69a.dirty"},
		{" 2.0.1\n", "2.0.1"},
	} {
		got, err := debVersion(c.in)
		if err != nil || got != c.want {
			t.Errorf("debVersion(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "release", "1.2-3_x", "abc", "v1.2.3-four"} {
		if got, err := debVersion(bad); err == nil {
			t.Errorf("debVersion(%q) = %q, want an error", bad, got)
		}
	}
}

const testVersion = "1.2.3+4.gabc1234"

// built holds what TestPackages made, per file name.
type built struct {
	job  job
	path string
}

// TestPackages builds every package `make deb` builds, checks each one's control fields, files and binaries, then
// installs the amd64 packages into a scratch root with the real dpkg and runs their maintainer scripts there.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: building five packages (three cross-compiles) takes a minute")
	}
	out := t.TempDir()
	var pkgs []built
	for _, j := range []job{
		{devicePackage, "amd64"}, {devicePackage, "arm64"}, {devicePackage, "armhf"},
		{hubPackage, "amd64"}, {hubPackage, "arm64"},
	} {
		path, err := build(context.Background(), "../..", out, testVersion, j)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s_%s_%s.deb", j.Package.Name, testVersion, j.Arch)
		if filepath.Base(path) != want {
			t.Errorf("package file %s, want %s", filepath.Base(path), want)
		}
		pkgs = append(pkgs, built{j, path})
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed: the packages were built but not inspected (apt-get install dpkg)")
	}
	t.Run("control", func(t *testing.T) {
		for _, p := range pkgs {
			checkControl(t, p)
		}
	})
	t.Run("install", func(t *testing.T) {
		var device, hub string
		for _, p := range pkgs {
			if p.job.Arch == "amd64" && p.job.Package.Name == "vaora" {
				device = p.path
			}
			if p.job.Arch == "amd64" && p.job.Package.Name == "vaora-hub" {
				hub = p.path
			}
		}
		testInstall(t, device, hub)
	})
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armhf": elf.EM_ARM}

func checkControl(t *testing.T, p built) {
	t.Helper()
	fields := map[string]string{}
	for _, f := range []string{"Package", "Version", "Architecture", "Depends", "Section", "Priority", "Maintainer", "Description"} {
		out, err := exec.Command("dpkg-deb", "-f", p.path, f).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s %s: %v", p.path, f, err)
		}
		fields[f] = strings.TrimSpace(string(out))
	}
	want := map[string]string{
		"Package": p.job.Package.Name, "Version": testVersion, "Architecture": p.job.Arch,
		"Depends": strings.Join(p.job.Package.Depends, ", "), "Section": "misc", "Priority": "optional",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("%s: %s is %q, want %q", filepath.Base(p.path), k, fields[k], v)
		}
	}
	if fields["Maintainer"] == "" || fields["Description"] == "" {
		t.Errorf("%s: Maintainer or Description empty: %q", filepath.Base(p.path), fields)
	}
	conf, err := exec.Command("dpkg-deb", "-I", p.path, "conffiles").Output()
	if err != nil {
		t.Fatalf("dpkg-deb -I %s conffiles: %v", p.path, err)
	}
	var wantConf []string
	for _, dst := range p.job.Package.Configs {
		wantConf = append(wantConf, dst)
	}
	if got := strings.Fields(string(conf)); !slices.Equal(got, wantConf) {
		t.Errorf("%s: conffiles %q, want %q", filepath.Base(p.path), got, wantConf)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if out, err := exec.Command("dpkg-deb", "-I", p.path, s).Output(); err != nil || !strings.HasPrefix(string(out), "#!/bin/sh") {
			t.Errorf("%s: maintainer script %s missing or not a shell script: %v", filepath.Base(p.path), s, err)
		}
	}

	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", p.path, dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", p.path, err, out)
	}
	for _, b := range p.job.Package.Bins {
		bin := filepath.Join(dir, "usr/bin", b)
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("%s: /usr/bin/%s: %v", filepath.Base(p.path), b, err)
		}
		if f.Machine != elfMachine[p.job.Arch] {
			t.Errorf("%s: /usr/bin/%s is for %v, want %v", filepath.Base(p.path), b, f.Machine, elfMachine[p.job.Arch])
		}
		f.Close()
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatalf("%s: /usr/bin/%s: %v", filepath.Base(p.path), b, err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" {
			t.Errorf("%s: /usr/bin/%s built with CGO_ENABLED=%q, want 0", filepath.Base(p.path), b, settings["CGO_ENABLED"])
		}
		if p.job.Arch == "armhf" && settings["GOARM"] != "6" {
			t.Errorf("%s: /usr/bin/%s built with GOARM=%q, want 6 (Pi Zero and 1)", filepath.Base(p.path), b, settings["GOARM"])
		}
	}
	for _, u := range p.job.Package.Units {
		if _, err := os.Stat(filepath.Join(dir, "lib/systemd/system", u)); err != nil {
			t.Errorf("%s: unit %s: %v", filepath.Base(p.path), u, err)
		}
	}
}

// root is a scratch system to install into: a dpkg database, passwd and group files with the groups Raspberry Pi
// OS has, and (for systemd-analyze) the host's own unit files. Without root privileges, everything runs under
// fakeroot, whose state file keeps the owners that dpkg and the maintainer scripts set.
type root struct {
	t       *testing.T
	dir     string
	state   string // fakeroot's saved state; empty when running as root
	env     []string
	tripLog string
}

func newRoot(t *testing.T, groups string) *root {
	t.Helper()
	r := &root{t: t, dir: t.TempDir()}
	if os.Getuid() != 0 {
		if _, err := exec.LookPath("fakeroot"); err != nil {
			t.Skip("not root and fakeroot not installed: cannot install into a scratch root (apt-get install fakeroot)")
		}
		r.state = filepath.Join(t.TempDir(), "fakeroot.state")
		if err := os.WriteFile(r.state, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log", "etc", "lib/systemd/system", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var group, gshadow strings.Builder
	for _, line := range strings.Fields(groups) {
		name, id, _ := strings.Cut(line, ":")
		fmt.Fprintf(&group, "%s:x:%s:\n", name, id)
		fmt.Fprintf(&gshadow, "%s:!::\n", name)
	}
	for name, body := range map[string]string{
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
		"etc/passwd":             "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/shadow":             "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"etc/group":              group.String(),
		"etc/gshadow":            gshadow.String(),
	} {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Tripwires: in a scratch root (DPKG_ROOT set) the scripts must never start, stop or reload anything on the
	// host. Each of these records its call and fails.
	trip := t.TempDir()
	r.tripLog = filepath.Join(trip, "calls.log")
	for _, name := range []string{"deb-systemd-invoke", "systemctl", "udevadm", "invoke-rc.d"} {
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>%s\nexit 1\n", name, r.tripLog)
		if err := os.WriteFile(filepath.Join(trip, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.env = append(os.Environ(), "PATH="+trip+":/usr/sbin:/usr/bin:/sbin:/bin")
	return r
}

// run runs a command as root (or under fakeroot) and returns its combined output.
func (r *root) run(env []string, name string, args ...string) (string, error) {
	if r.state != "" {
		args = append([]string{"-i", r.state, "-s", r.state, "--", name}, args...)
		name = "fakeroot"
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(slices.Clone(r.env), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *root) dpkg(env []string, args ...string) string {
	r.t.Helper()
	args = append([]string{"--root=" + r.dir, "--log=" + filepath.Join(r.dir, "var/log/dpkg.log"),
		"--force-not-root", "--force-script-chrootless", "--force-depends"}, args...)
	out, err := r.run(env, "dpkg", args...)
	if err != nil {
		r.t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// owner is the numeric owner and mode of a path in the root, as dpkg and the scripts set it.
func (r *root) owner(rel string) (uid int, mode string) {
	r.t.Helper()
	out, err := r.run(nil, "stat", "-c", "%u %a", filepath.Join(r.dir, rel))
	if err != nil {
		r.t.Fatalf("stat %s: %v\n%s", rel, err, out)
	}
	u, m, _ := strings.Cut(strings.TrimSpace(out), " ")
	uid, err = strconv.Atoi(u)
	if err != nil {
		r.t.Fatalf("stat %s: %q", rel, out)
	}
	return uid, m
}

func (r *root) read(rel string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, rel))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func (r *root) exists(rel string) bool {
	_, err := os.Lstat(filepath.Join(r.dir, rel))
	return err == nil
}

func (r *root) noTrips() {
	r.t.Helper()
	if b, err := os.ReadFile(r.tripLog); err == nil {
		r.t.Errorf("maintainer scripts touched the host's services while installing into a scratch root:\n%s", b)
	}
}

// entry is one line of an /etc/passwd or /etc/group file in the root, split at colons.
func (r *root) entry(file, name string) []string {
	for _, line := range strings.Split(r.read(file), "\n") {
		if f := strings.Split(line, ":"); f[0] == name {
			return f
		}
	}
	return nil
}

func testInstall(t *testing.T, device, hub string) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed: the packages were not installed into a scratch root (apt-get install dpkg)")
	}
	for _, name := range []string{"useradd", "usermod"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s not installed: the user-creating postinst cannot run here (apt-get install passwd)", name)
		}
	}
	// Raspberry Pi OS has a gpio group; Debian on a PC does not, and the package makes it. Both must install.
	for _, c := range []struct {
		name, groups string
		wantGroups   []string
	}{
		{"raspios", "root:0 dialout:20 audio:29 video:44 input:105 gpio:997 nogroup:65534", []string{"video", "dialout", "input", "audio", "gpio"}},
		{"debian", "root:0 dialout:20 audio:29 video:44 input:105 nogroup:65534", []string{"video", "dialout", "input", "audio", "gpio"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRoot(t, c.groups)
			r.dpkg(nil, "-i", device, hub)
			r.noTrips()

			for _, f := range []struct {
				path, mode string
			}{
				{"usr/bin/vaorad", "755"}, {"usr/bin/vaoractl", "755"}, {"usr/bin/vaorahub", "755"},
				{"lib/systemd/system/vaorad.service", "644"}, {"lib/systemd/system/vaora-kiosk.service", "644"},
				{"lib/systemd/system/vaorahub.service", "644"}, {"lib/udev/rules.d/99-vaora.rules", "644"},
				{"etc/vaora/vaorad.yaml", "644"}, {"etc/vaora/vaorahub.yaml", "644"},
				{"usr/share/doc/vaora/installing.md", "644"}, {"usr/share/doc/vaora/operators.md", "644"},
				{"usr/share/doc/vaora/hub.md", "644"},
			} {
				if uid, mode := r.owner(f.path); uid != 0 || mode != f.mode {
					t.Errorf("/%s: owner %d mode %s, want root %s", f.path, uid, mode, f.mode)
				}
			}
			for _, pkg := range []string{"vaora", "vaora-hub"} {
				conf := r.read("var/lib/dpkg/info/" + pkg + ".conffiles")
				want := "/etc/vaora/vaorad.yaml\n"
				if pkg == "vaora-hub" {
					want = "/etc/vaora/vaorahub.yaml\n"
				}
				if conf != want {
					t.Errorf("%s.conffiles in the dpkg database: %q, want %q", pkg, conf, want)
				}
			}

			// The system user: no login, home in its state directory, in the groups that open the devices.
			pw := r.entry("etc/passwd", "vaora")
			if pw == nil || pw[5] != "/var/lib/vaora" || pw[6] != "/usr/sbin/nologin" {
				t.Fatalf("user vaora in /etc/passwd: %q", pw)
			}
			uid, _ := strconv.Atoi(pw[2])
			if uid == 0 || uid >= 1000 {
				t.Errorf("user vaora has uid %d, want a system uid (1-999)", uid)
			}
			if g := r.entry("etc/group", "vaora"); g == nil || g[2] != pw[3] {
				t.Errorf("group vaora %q, want gid %s (the user's primary group)", g, pw[3])
			}
			for _, g := range c.wantGroups {
				if e := r.entry("etc/group", g); e == nil || !slices.Contains(strings.Split(e[3], ","), "vaora") {
					t.Errorf("vaora is not in group %s: %q", g, e)
				}
			}
			if owner, mode := r.owner("var/lib/vaora"); owner != uid || mode != "700" {
				t.Errorf("/var/lib/vaora: owner %d mode %s, want vaora (%d) 700", owner, mode, uid)
			}
			// Enrolment writes the keys the hub sends here, under the unit's ProtectSystem=strict.
			if owner, mode := r.owner("etc/vaora/keys"); owner != uid || mode != "750" {
				t.Errorf("/etc/vaora/keys: owner %d mode %s, want vaora (%d) 750", owner, mode, uid)
			}

			// Enabled for the first boot, not started; the kiosk is the admin's choice.
			for unit, want := range map[string]bool{"vaorad.service": true, "vaorahub.service": true, "vaora-kiosk.service": false} {
				link := "etc/systemd/system/multi-user.target.wants/" + unit
				if got := r.exists(link); got != want {
					t.Errorf("%s enabled (%s): %v, want %v", unit, link, got, want)
				}
			}
			if dst, err := os.Readlink(filepath.Join(r.dir, "etc/systemd/system/multi-user.target.wants/vaorad.service")); err == nil && dst != "/lib/systemd/system/vaorad.service" {
				t.Errorf("vaorad.service enabled as a link to %s", dst)
			}
			verifyUnits(t, r)

			// Upgrade (reinstall): the site's config stays, the unit stays enabled; once the admin disabled it,
			// an upgrade leaves it disabled.
			const site = "# this site's settings\ndevice_id: gate-7\n"
			if err := os.WriteFile(filepath.Join(r.dir, "etc/vaora/vaorad.yaml"), []byte(site), 0o644); err != nil {
				t.Fatal(err)
			}
			r.dpkg(nil, "-i", device)
			if got := r.read("etc/vaora/vaorad.yaml"); got != site {
				t.Errorf("upgrade replaced the site's /etc/vaora/vaorad.yaml with:\n%.200s", got)
			}
			if !r.exists("etc/systemd/system/multi-user.target.wants/vaorad.service") {
				t.Error("upgrade left vaorad.service disabled")
			}
			if systemctl, err := exec.LookPath("systemctl"); err != nil {
				t.Log("NOTICE: systemctl not installed: not checked that an upgrade keeps a unit the admin disabled")
			} else {
				if out, err := r.run(nil, systemctl, "--root="+r.dir, "disable", "vaorad.service"); err != nil {
					t.Fatalf("systemctl --root disable vaorad.service: %v\n%s", err, out)
				}
				r.dpkg(nil, "-i", device)
				if r.exists("etc/systemd/system/multi-user.target.wants/vaorad.service") {
					t.Error("upgrade enabled vaorad.service again after the admin disabled it")
				}
			}
			r.noTrips()

			// Remove keeps the config and the state; purge keeps the state and says why.
			if err := os.WriteFile(filepath.Join(r.dir, "var/lib/vaora/outbox.db"), []byte("unsynced"), 0o600); err != nil {
				t.Fatal(err)
			}
			r.dpkg(nil, "-r", "vaora")
			if r.exists("usr/bin/vaorad") || !r.exists("etc/vaora/vaorad.yaml") {
				t.Error("remove: /usr/bin/vaorad should be gone and /etc/vaora/vaorad.yaml kept")
			}
			out := r.dpkg(nil, "--purge", "vaora")
			if r.exists("etc/vaora/vaorad.yaml") {
				t.Error("purge kept /etc/vaora/vaorad.yaml")
			}
			if !r.exists("var/lib/vaora/outbox.db") {
				t.Error("purge deleted /var/lib/vaora without VAORA_PURGE_STATE=yes")
			}
			if !strings.Contains(out, "kept /var/lib/vaora") || !strings.Contains(out, "not confirmed yet") {
				t.Errorf("purge did not say why /var/lib/vaora was kept:\n%s", out)
			}
			r.dpkg(nil, "-i", device)
			out = r.dpkg([]string{"VAORA_PURGE_STATE=yes"}, "--purge", "vaora")
			if r.exists("var/lib/vaora/outbox.db") || !r.exists("var/lib/vaora") {
				t.Errorf("purge with VAORA_PURGE_STATE=yes: want /var/lib/vaora emptied (kept as a mount point)\n%s", out)
			}
			r.noTrips()
		})
	}
}

// verifyUnits runs systemd-analyze verify on the installed units against the root (--root): the binaries their
// ExecStart names are the installed ones. Like cmd/vaorad's unit test, any output fails: the tool exits 0 on
// warnings. The host's unit files stand in for the system's own (sysinit.target and the rest).
func verifyUnits(t *testing.T, r *root) {
	t.Helper()
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("NOTICE: systemd-analyze not installed: the installed units were not verified (apt-get install systemd)")
		return
	}
	host, err := os.ReadDir("/lib/systemd/system")
	if err != nil {
		t.Logf("NOTICE: no /lib/systemd/system on this host: the installed units were not verified")
		return
	}
	for _, e := range host {
		dst := filepath.Join(r.dir, "lib/systemd/system", e.Name())
		if r.exists(filepath.Join("lib/systemd/system", e.Name())) {
			continue
		}
		src := filepath.Join("/lib/systemd/system", e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, dst)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if e.IsDir() {
			continue // drop-in and wants directories: not needed to load our units
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The kiosk runs Debian's cage, which the package only suggests: an executable stands in for it.
	if !r.exists("usr/bin/cage") {
		if err := os.WriteFile(filepath.Join(r.dir, "usr/bin/cage"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, unit := range []string{"vaorad.service", "vaora-kiosk.service", "vaorahub.service"} {
		out, err := exec.Command(tool, "verify", "--root="+r.dir, "/lib/systemd/system/"+unit).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify --root=%s %s: %v\n%s", r.dir, unit, err, out)
		}
	}
}
