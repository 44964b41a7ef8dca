// Package image holds the appliance image recipe (build-image.sh) and its test. No Raspberry Pi OS image can be
// downloaded here, so the test builds a stand-in: a minimal arm64 Debian root tree with what the recipe touches
// (passwd and group files with Pi OS's groups, a dpkg database, fstab, a boot partition with config.txt and
// cmdline.txt), packs it as a Pi OS-shaped .img.xz (FAT boot + ext4 root, MBR), runs the whole recipe on it with the
// real arm64 package, and reads the result back with sfdisk, debugfs and mtools.
package image

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const standinID = "0a1b2c3d"

// TestImageStandin runs `build-image.sh image` on a stand-in Raspberry Pi OS image (make image-standin).
func TestImageStandin(t *testing.T) {
	if os.Getenv("VAORA_TEST_IMAGE") != "1" {
		t.Skip("VAORA_TEST_IMAGE=1 not set: the image recipe was not run on a stand-in root (make image-standin)")
	}
	if os.Getuid() != 0 {
		t.Skip("not root: build-image.sh sets owners of system files and must run as root")
	}
	for tool, pkg := range map[string]string{
		"dpkg": "dpkg", "useradd": "passwd", "mkfs.ext4": "e2fsprogs", "debugfs": "e2fsprogs", "dumpe2fs": "e2fsprogs",
		"sfdisk": "fdisk", "mcopy": "mtools", "mtype": "mtools", "mkfs.vfat": "dosfstools", "xz": "xz-utils",
		"deb-systemd-helper": "init-system-helpers",
	} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the image recipe needs it (apt-get install %s)", tool, pkg)
		}
	}
	work := t.TempDir()
	dist := filepath.Join(work, "dist")
	run(t, "", "go", "run", "../mkdeb", "-root", "../..", "-out", dist, "-version", "0.0.0+standin",
		"-device-arch", "arm64", "-hub-arch", "")
	deb := filepath.Join(dist, "vaora_0.0.0+standin_arm64.deb")

	pios := standinImage(t, work)
	site := filepath.Join(work, "site")
	siteConfig := "# stand-in site\ndevice_id: gate-standin\nsite: standin\nbroker: tcp://192.0.2.10:1883\n"
	writeFile(t, filepath.Join(site, "vaorad.yaml"), siteConfig, 0o644)
	writeFile(t, filepath.Join(site, "keys/subject.key"), "stand-in secret, not a real key\n", 0o600)
	writeFile(t, filepath.Join(site, "keys/service.pub"), "stand-in public key\n", 0o644)
	writeFile(t, filepath.Join(site, "boot/ssh"), "", 0o644)

	out := filepath.Join(work, "vaora.img")
	run(t, "", "./build-image.sh", "image", "--pios", pios, "--deb", deb, "--out", out, "--site", site,
		"--data-mb", "64", "--headroom-mb", "32", "--work", filepath.Join(work, "build"))

	// The disk: boot where it was, root, then data; a new disk id.
	dump := run(t, "", "sfdisk", "--dump", out)
	parts := regexp.MustCompile(`(?m)^\S+(\d) : start=\s*(\d+), size=\s*(\d+), type=(\w+)`).FindAllStringSubmatch(dump, -1)
	if len(parts) != 3 || parts[0][2] != "8192" || parts[0][4] != "c" || parts[1][4] != "83" || parts[2][4] != "83" {
		t.Fatalf("partitions of %s: want boot (FAT at 8192), root, data:\n%s", out, dump)
	}
	id := regexp.MustCompile(`(?m)^label-id: 0x([0-9a-f]+)`).FindStringSubmatch(dump)
	if id == nil || id[1] == standinID {
		t.Errorf("disk id %q: want a new one (the stand-in's is %s)", id, standinID)
	}
	newID := ""
	if id != nil {
		newID = id[1]
	}
	boot := extract(t, out, parts[0], filepath.Join(work, "p1.vfat"))
	rootfs := extract(t, out, parts[1], filepath.Join(work, "p2.ext4"))
	data := extract(t, out, parts[2], filepath.Join(work, "p3.ext4"))

	// Boot partition: camera and watchdog on; root by the new PARTUUID; no first-boot resize; the site's files.
	config := run(t, "", "mtype", "-i", boot, "::config.txt")
	for _, want := range []string{"camera_auto_detect=1", "dtparam=watchdog=on", "dtparam=audio=on"} {
		if !strings.Contains(config, "\n"+want+"\n") {
			t.Errorf("config.txt lacks %q:\n%s", want, config)
		}
	}
	cmdline := run(t, "", "mtype", "-i", boot, "::cmdline.txt")
	if !strings.Contains(cmdline, "root=PARTUUID="+newID+"-02 ") || strings.Contains(cmdline, "firstboot") {
		t.Errorf("cmdline.txt: want root=PARTUUID=%s-02 and no firstboot: %q", newID, cmdline)
	}
	if _, err := exec.Command("mtype", "-i", boot, "::ssh").Output(); err != nil {
		t.Errorf("the site's boot/ssh is not on the boot partition: %v", err)
	}

	// Root file system.
	bin := filepath.Join(work, "vaorad")
	debugfs(t, rootfs, "dump /usr/bin/vaorad "+bin)
	if f, err := elf.Open(bin); err != nil {
		t.Errorf("/usr/bin/vaorad in the image: %v", err)
	} else {
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("/usr/bin/vaorad in the image is for %v, want arm64", f.Machine)
		}
		f.Close()
	}
	link := debugfs(t, rootfs, "stat /etc/systemd/system/multi-user.target.wants/vaorad.service")
	if !strings.Contains(link, "Type: symlink") || !strings.Contains(link, `"/lib/systemd/system/vaorad.service"`) {
		t.Errorf("vaorad.service is not enabled (multi-user.target.wants link):\n%s", link)
	}
	if unit := debugfs(t, rootfs, "cat /lib/systemd/system/vaorad.service"); !strings.Contains(unit, "ExecStart=/usr/bin/vaorad") {
		t.Errorf("/lib/systemd/system/vaorad.service in the image:\n%.300s", unit)
	}
	fstab := debugfs(t, rootfs, "cat /etc/fstab")
	if !regexp.MustCompile(`(?m)^LABEL=vaora-data\s+/var/lib/vaora\s+ext4\s+\S*data=ordered,noatime\S*\s+0\s+2$`).MatchString(fstab) ||
		!strings.Contains(fstab, "PARTUUID="+newID+"-02") || strings.Contains(fstab, standinID) {
		t.Errorf("/etc/fstab: want the data partition (data=ordered,noatime) and PARTUUIDs of disk %s:\n%s", newID, fstab)
	}
	for file, want := range map[string]string{
		"/etc/systemd/journald.conf.d/60-vaora.conf":        "SystemMaxUse=64M",
		"/etc/systemd/system.conf.d/60-vaora-watchdog.conf": "RuntimeWatchdogSec=15s",
		"/etc/systemd/timesyncd.conf.d/60-vaora.conf":       "NTP=vn.pool.ntp.org pool.ntp.org",
		"/lib/udev/rules.d/99-vaora.rules":                  `SYMLINK+="vaora-reader"`,
		"/etc/vaora/vaorad.yaml":                            siteConfig,
		"/etc/passwd":                                       "\nvaora:x:",
		"/usr/share/doc/vaora/installing.md":                "#",
		"/var/lib/dpkg/info/vaora.conffiles":                "/etc/vaora/vaorad.yaml\n",
	} {
		if got := debugfs(t, rootfs, "cat "+file); !strings.Contains(got, want) {
			t.Errorf("%s in the image lacks %q:\n%.400s", file, want, got)
		}
	}
	passwd := debugfs(t, rootfs, "cat /etc/passwd")
	m := regexp.MustCompile(`(?m)^vaora:x:(\d+):(\d+):`).FindStringSubmatch(passwd)
	if m == nil {
		t.Fatalf("no user vaora in the image's /etc/passwd:\n%s", passwd)
	}
	uid, gid := m[1], m[2]
	group := debugfs(t, rootfs, "cat /etc/group")
	for _, g := range []string{"video", "dialout", "input", "gpio"} {
		if !regexp.MustCompile(`(?m)^` + g + `:x:\d+:(.*,)?vaora(,|$)`).MatchString(group) {
			t.Errorf("vaora is not in group %s in the image:\n%s", g, group)
		}
	}
	checkInode(t, rootfs, "/var/lib/vaora", "40700", uid, gid)
	checkInode(t, rootfs, "/etc/vaora/keys/subject.key", "100600", uid, gid)
	checkInode(t, rootfs, "/etc/vaora/keys/service.pub", "100644", "0", "0")
	// What the extraction must keep: setuid bits and hard links of the stand-in's own files.
	checkInode(t, rootfs, "/usr/bin/standin-su", "104755", "0", "0")
	checkInode(t, rootfs, "/usr/bin/standin-wall", "102755", "0", "5")
	if a, b := inode(t, rootfs, "/usr/bin/standin-su"), inode(t, rootfs, "/usr/bin/standin-su-link"); a != b {
		t.Errorf("hard link lost: standin-su is inode %s, standin-su-link %s", a, b)
	}

	// Data partition: labelled for fstab, its top directory vaora's alone.
	if label := run(t, "", "dumpe2fs", "-h", data); !regexp.MustCompile(`(?m)^Filesystem volume name:\s+vaora-data$`).MatchString(label) {
		t.Errorf("data partition not labelled vaora-data:\n%.300s", label)
	}
	checkInode(t, data, "/", "40700", uid, gid)
}

// standinImage builds a Raspberry Pi OS-shaped image (.img.xz) from a minimal arm64 root tree, and returns its path.
func standinImage(t *testing.T, work string) string {
	t.Helper()
	root := filepath.Join(work, "standin-root")
	for _, d := range []string{"boot/firmware", "dev", "proc", "sys", "run", "tmp", "var/log", "var/lib/dpkg/info",
		"var/lib/dpkg/updates", "var/lib/dpkg/triggers", "lib/systemd/system", "etc/systemd/system", "usr/bin", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n"+
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/shadow"), "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640)
	var group, gshadow strings.Builder
	for _, g := range strings.Fields("root:0 daemon:1 tty:5 dialout:20 audio:29 video:44 input:105 render:106 gpio:997 nogroup:65534") {
		name, id, _ := strings.Cut(g, ":")
		fmt.Fprintf(&group, "%s:x:%s:\n", name, id)
		fmt.Fprintf(&gshadow, "%s:*::\n", name)
	}
	writeFile(t, filepath.Join(root, "etc/group"), group.String(), 0o644)
	writeFile(t, filepath.Join(root, "etc/gshadow"), gshadow.String(), 0o640)
	writeFile(t, filepath.Join(root, "etc/fstab"), "proc            /proc           proc    defaults          0       0\n"+
		"PARTUUID="+standinID+"-01  /boot/firmware  vfat    defaults          0       2\n"+
		"PARTUUID="+standinID+"-02  /               ext4    defaults,noatime  0       1\n", 0o644)
	// The package depends on passwd: its useradd is the build host's (the scripts run chrootless), so the
	// stand-in's database records it as installed, as Raspberry Pi OS's does.
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "Package: passwd\nStatus: install ok installed\n"+
		"Priority: required\nSection: admin\nMaintainer: stand-in\nArchitecture: arm64\nVersion: 1:4.13+dfsg1-1+b1\n"+
		"Description: stand-in entry for the image test\n\n", 0o644)
	writeFile(t, filepath.Join(root, "var/lib/dpkg/available"), "", 0o644)
	// Files whose setuid/setgid bits and hard link the extraction must keep (like su, wall and sudoedit).
	writeFile(t, filepath.Join(root, "usr/bin/standin-su"), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(root, "usr/bin/standin-wall"), "#!/bin/sh\n", 0o755)
	must(t, os.Chmod(filepath.Join(root, "usr/bin/standin-su"), os.ModeSetuid|0o755))
	must(t, os.Chown(filepath.Join(root, "usr/bin/standin-wall"), 0, 5))
	must(t, os.Chmod(filepath.Join(root, "usr/bin/standin-wall"), os.ModeSetgid|0o755))
	must(t, os.Link(filepath.Join(root, "usr/bin/standin-su"), filepath.Join(root, "usr/bin/standin-su-link")))

	bootDir := filepath.Join(work, "standin-boot")
	writeFile(t, filepath.Join(bootDir, "config.txt"), "# stand-in for Raspberry Pi OS's config.txt\ndtparam=audio=on\n"+
		"auto_initramfs=1\narm_64bit=1\n\n[cm4]\notg_mode=1\n\n[all]\n", 0o644)
	writeFile(t, filepath.Join(bootDir, "cmdline.txt"), "console=serial0,115200 console=tty1 root=PARTUUID="+standinID+
		"-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n", 0o644)

	vfat := filepath.Join(work, "standin-boot.vfat")
	run(t, "", "mkfs.vfat", "-n", "bootfs", "-C", vfat, "65536") // 64 MiB
	run(t, "", "mcopy", "-i", vfat, filepath.Join(bootDir, "config.txt"), filepath.Join(bootDir, "cmdline.txt"), "::")
	ext4 := filepath.Join(work, "standin-root.ext4")
	must(t, os.WriteFile(ext4, nil, 0o644))
	must(t, os.Truncate(ext4, 64<<20))
	run(t, "", "mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", root, ext4)

	img := filepath.Join(work, "standin-raspios.img")
	must(t, os.WriteFile(img, nil, 0o644))
	must(t, os.Truncate(img, (8192+131072+131072+8192)*512))
	sf := exec.Command("sfdisk", "--quiet", img)
	sf.Stdin = strings.NewReader("label: dos\nlabel-id: 0x" + standinID + "\nunit: sectors\n\n" +
		"start=8192, size=131072, type=c\nstart=139264, size=131072, type=83\n")
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s", img, err, out)
	}
	run(t, "", "dd", "if="+vfat, "of="+img, "bs=512", "seek=8192", "conv=notrunc", "status=none")
	run(t, "", "dd", "if="+ext4, "of="+img, "bs=512", "seek=139264", "conv=notrunc", "status=none")
	run(t, "", "xz", "-0", "-T1", img)
	return img + ".xz"
}

// extract copies one partition (an sfdisk --dump match: number, start, size) of img into a file.
func extract(t *testing.T, img string, part []string, dst string) string {
	t.Helper()
	start, _ := strconv.Atoi(part[2])
	size, _ := strconv.Atoi(part[3])
	run(t, "", "dd", "if="+img, "of="+dst, "bs=512", "skip="+strconv.Itoa(start), "count="+strconv.Itoa(size), "status=none")
	return dst
}

func debugfs(t *testing.T, fs, request string) string {
	t.Helper()
	cmd := exec.Command("debugfs", "-R", request, fs)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs -R %q %s: %v\n%s", request, fs, err, stderr.String())
	}
	// debugfs reports a missing file on stderr and exits 0.
	if e := strings.TrimSpace(strings.TrimPrefix(stderr.String(), strings.SplitN(stderr.String(), "\n", 2)[0])); e != "" {
		t.Errorf("debugfs -R %q: %s", request, e)
	}
	return stdout.String()
}

// checkInode compares a path's type+mode (octal, as debugfs ls -l shows it), owner and group in an ext4 image.
func checkInode(t *testing.T, fs, path, mode, uid, gid string) {
	t.Helper()
	dir, name := filepath.Split(path)
	if path == "/" {
		dir, name = "/", "."
	}
	for _, line := range strings.Split(debugfs(t, fs, "ls -l "+dir), "\n") {
		f := strings.Fields(line)
		if len(f) >= 9 && f[len(f)-1] == name {
			if f[1] != mode || f[3] != uid || f[4] != gid {
				t.Errorf("%s in %s: mode %s owner %s:%s, want %s %s:%s", path, filepath.Base(fs), f[1], f[3], f[4], mode, uid, gid)
			}
			return
		}
	}
	t.Errorf("%s not found in %s", path, filepath.Base(fs))
}

func inode(t *testing.T, fs, path string) string {
	t.Helper()
	out := debugfs(t, fs, "stat "+path)
	m := regexp.MustCompile(`Inode: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debugfs stat %s: %s", path, out)
	}
	return m[1]
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func writeFile(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(body), mode))
	must(t, os.Chmod(path, mode))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
