#!/usr/bin/env bash
# build-image.sh: turns Raspberry Pi OS Lite (bookworm, arm64) into the vaora appliance image. Needs root (owners
# and modes of system files), dpkg, passwd (useradd), e2fsprogs (mkfs.ext4, debugfs), fdisk (sfdisk), mtools, xz.
# It uses no loop devices and mounts nothing, so it runs in containers and CI; see firmware/README.md.
#
#   build-image.sh image --pios 2025-05-13-raspios-bookworm-arm64-lite.img.xz --deb dist/vaora_1.2.0_arm64.deb \
#       --out vaora-1.2.0.img [--site DIR] [--data-mb 2048] [--headroom-mb 512] [--packages [--profile kiosk]]
#
# The steps, each usable alone (the stand-in test runs them on a root tree it builds itself):
#   configure-root --root DIR --deb FILE [--site DIR] [--boot DIR] [--packages [--profile kiosk]]
#       installs the package into the root tree DIR and applies the appliance's configuration; --boot is where
#       the boot partition's config.txt is (default DIR/boot/firmware)
#   make-rootfs --root DIR --out FILE [--label NAME] [--uuid UUID] [--headroom-mb N]
#       makes an ext4 file system image of DIR with mkfs.ext4 -d
#   make-data --root DIR --out FILE [--data-mb N]
#       makes the empty data partition (label vaora-data) owned by DIR's user vaora, mode 0700
#
# A site directory (--site) may hold: vaorad.yaml (→ /etc/vaora/vaorad.yaml), keys/ (→ /etc/vaora/keys: service.pub,
# authority.pub, subject.key, issuer*.pub; docs/keys.md), rootfs/ (copied over the root as is: Wi-Fi, SSH keys,
# anything else) and boot/ (copied onto the boot partition: userconf.txt, ssh, ...).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prog=$(basename "$0")

die() {
	echo "$prog: $*" >&2
	exit 1
}
say() { echo "$prog: $*" >&2; }

need() {
	local missing=()
	for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
	[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (Debian: apt-get install dpkg passwd e2fsprogs fdisk mtools xz-utils)"
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "$1 must run as root: it sets the owners and modes of system files"
}

# ---------------------------------------------------------------------------------------------------------------
# configure-root: the package and the appliance's configuration, in a root tree.

# The vaora package's maintainer scripts run with this host's shell and DPKG_ROOT set (--force-script-chrootless):
# they edit DIR/etc/passwd with useradd --prefix and enable the unit with deb-systemd-helper, and start nothing.
# So an arm64 root installs on an amd64 host without emulation.
install_deb() {
	local root=$1 deb=$2
	local arch
	arch=$(dpkg-deb -f "$deb" Architecture)
	mkdir -p "$root/var/log"
	say "installing $(basename "$deb") ($arch) into $root"
	dpkg --root="$root" --log="$root/var/log/dpkg.log" --force-script-chrootless --force-architecture \
		--force-confold -i "$deb"
}

# --packages: Debian packages from packages.txt, installed by apt inside the root. Unlike the steps above this runs
# the root's own (arm64) programs, so it needs qemu-user-static registered with binfmt_misc and a network.
install_packages() {
	local root=$1 profile=$2
	[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || [ "$(uname -m)" = aarch64 ] ||
		die "--packages runs arm64 programs: apt-get install qemu-user-static binfmt-support, and check /proc/sys/fs/binfmt_misc/qemu-aarch64"
	local pkgs
	pkgs=$(sed -e 's/#.*//' "$here/packages.txt" | awk -v p="$profile" '
		/^[a-z0-9-]+:/ { split($0, a, ":"); if (a[1] == p) { sub(/^[^:]*: */, ""); print }; next }
		NF { print }')
	say "installing packages into $root: $(echo $pkgs)"
	mount --bind /proc "$root/proc"
	mount --bind /dev "$root/dev"
	cp /etc/resolv.conf "$root/etc/resolv.conf.vaora-build"
	local rc=0
	chroot "$root" /bin/sh -c "mv /etc/resolv.conf /etc/resolv.conf.orig 2>/dev/null; cp /etc/resolv.conf.vaora-build /etc/resolv.conf;
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(echo $pkgs); rc=\$?;
		rm -f /etc/resolv.conf /etc/resolv.conf.vaora-build; mv /etc/resolv.conf.orig /etc/resolv.conf 2>/dev/null; apt-get clean; exit \$rc" || rc=$?
	umount "$root/dev" "$root/proc"
	[ $rc -eq 0 ] || die "apt-get install in $root failed (exit $rc)"
}

# append FILE FRAGMENT: the fragment once, between markers, replacing an earlier copy (reruns are harmless).
append_once() {
	local file=$1 fragment=$2
	[ -f "$file" ] || die "$file does not exist: is this a Raspberry Pi OS root (and --boot its boot partition)?"
	sed -i '/^# vaora appliance (/,/^# end vaora$/d' "$file"
	# fstab.append has no end marker line of its own: add it.
	cat "$fragment" >>"$file"
	grep -q '^# end vaora$' "$fragment" || echo '# end vaora' >>"$file"
}

configure_root() {
	local root="" deb="" site="" boot="" packages=0 profile=""
	while [ $# -gt 0 ]; do
		case $1 in
		--root) root=$2; shift 2 ;;
		--deb) deb=$2; shift 2 ;;
		--site) site=$2; shift 2 ;;
		--boot) boot=$2; shift 2 ;;
		--packages) packages=1; shift ;;
		--profile) profile=$2; shift 2 ;;
		*) die "configure-root: unknown argument $1" ;;
		esac
	done
	[ -n "$root" ] && [ -n "$deb" ] || die "configure-root needs --root DIR and --deb FILE"
	[ -f "$root/etc/passwd" ] && [ -d "$root/var/lib/dpkg" ] || die "$root: no etc/passwd or var/lib/dpkg: not a Debian root tree"
	[ -f "$deb" ] || die "$deb: no such package (make deb builds dist/vaora_VERSION_arm64.deb)"
	boot=${boot:-$root/boot/firmware}
	need_root configure-root
	need dpkg dpkg-deb useradd usermod

	if [ $packages -eq 1 ]; then install_packages "$root" "$profile"; fi
	install_deb "$root" "$deb"

	say "applying the appliance configuration"
	cp -r --no-preserve=ownership "$here/rootfs/." "$root/"
	append_once "$boot/config.txt" "$here/boot/config.txt.append"
	append_once "$root/etc/fstab" "$here/fstab.append"
	install -d -m 0700 "$root/var/lib/vaora"

	if [ -n "$site" ]; then
		[ -d "$site" ] || die "--site $site: not a directory"
		local uid gid
		uid=$(awk -F: '$1 == "vaora" { print $3 }' "$root/etc/passwd")
		gid=$(awk -F: '$1 == "vaora" { print $4 }' "$root/etc/passwd")
		if [ -f "$site/vaorad.yaml" ]; then
			install -m 0644 -o 0 -g 0 "$site/vaorad.yaml" "$root/etc/vaora/vaorad.yaml"
		fi
		if [ -d "$site/keys" ]; then
			# Readable by vaorad (user vaora) only: subject.key is the secret behind every subject key.
			install -d -m 0750 -o 0 -g "$gid" "$root/etc/vaora/keys"
			for k in "$site/keys"/*; do
				[ -f "$k" ] || continue
				case $k in
				*.pub) install -m 0644 -o 0 -g 0 "$k" "$root/etc/vaora/keys/" ;;
				*) install -m 0600 -o "$uid" -g "$gid" "$k" "$root/etc/vaora/keys/" ;;
				esac
			done
		fi
		if [ -d "$site/rootfs" ]; then cp -a "$site/rootfs/." "$root/"; fi
		if [ -d "$site/boot" ]; then cp -r --no-preserve=ownership "$site/boot/." "$boot/"; fi
	fi
	say "root $root configured"
}

# ---------------------------------------------------------------------------------------------------------------
# make-rootfs and make-data: ext4 images of a tree, without mounting anything.

make_rootfs() {
	local root="" out="" label=rootfs uuid="" headroom=512
	while [ $# -gt 0 ]; do
		case $1 in
		--root) root=$2; shift 2 ;;
		--out) out=$2; shift 2 ;;
		--label) label=$2; shift 2 ;;
		--uuid) uuid=$2; shift 2 ;;
		--headroom-mb) headroom=$2; shift 2 ;;
		*) die "make-rootfs: unknown argument $1" ;;
		esac
	done
	[ -n "$root" ] && [ -n "$out" ] || die "make-rootfs needs --root DIR and --out FILE"
	need_root make-rootfs
	need mkfs.ext4
	# Size: what the tree uses, a tenth more for ext4's own metadata, and headroom for logs and upgrades.
	local used_kb files size_kb inodes
	used_kb=$(du -sk "$root" | cut -f1)
	files=$(find "$root" -xdev | wc -l)
	size_kb=$(((used_kb * 11 / 10 + headroom * 1024 + 4095) / 4096 * 4096))
	inodes=$((files * 2 + 16384))
	rm -f "$out"
	truncate -s "${size_kb}K" "$out"
	say "making $out: ext4, $((size_kb / 1024)) MiB, from $root"
	mkfs.ext4 -q -F -b 4096 -N "$inodes" -L "$label" ${uuid:+-U "$uuid"} -d "$root" "$out"
}

make_data() {
	local root="" out="" data_mb=2048
	while [ $# -gt 0 ]; do
		case $1 in
		--root) root=$2; shift 2 ;;
		--out) out=$2; shift 2 ;;
		--data-mb) data_mb=$2; shift 2 ;;
		*) die "make-data: unknown argument $1" ;;
		esac
	done
	[ -n "$root" ] && [ -n "$out" ] || die "make-data needs --root DIR (for user vaora's ids) and --out FILE"
	need mkfs.ext4 debugfs
	local uid gid
	uid=$(awk -F: '$1 == "vaora" { print $3 }' "$root/etc/passwd")
	gid=$(awk -F: '$1 == "vaora" { print $4 }' "$root/etc/passwd")
	[ -n "$uid" ] || die "$root/etc/passwd has no user vaora: run configure-root first"
	rm -f "$out"
	truncate -s "${data_mb}M" "$out"
	say "making $out: the data partition (ext4, label vaora-data, $data_mb MiB)"
	mkfs.ext4 -q -F -L vaora-data -E root_owner="$uid:$gid" "$out"
	debugfs -w -R "set_inode_field / mode 040700" "$out" >/dev/null 2>&1 ||
		die "debugfs could not set the mode of $out's top directory"
}

# ---------------------------------------------------------------------------------------------------------------
# image: the whole recipe on a Raspberry Pi OS image.

# extract_root EXT4 DIR: the file system's tree, as root would see it mounted. debugfs rdump keeps owners, modes
# and symlinks but drops setuid/setgid bits (it chowns after chmod) and splits hard links, so a second pass reads
# every directory's listing (one debugfs run) and puts both back. Extended attributes (file capabilities) are not
# carried over; see firmware/README.md.
extract_root() {
	local img=$1 dir=$2
	mkdir -p "$dir"
	say "extracting the root file system (debugfs rdump)"
	debugfs -R "rdump / $dir" "$img" >/dev/null 2>&1 || die "debugfs rdump of $img failed"
	local cmds
	cmds=$(mktemp)
	(cd "$dir" && find . -xdev -type d -printf 'ls -l "/%P"\n') >"$cmds"
	debugfs -f "$cmds" "$img" 2>/dev/null | awk -v root="$dir" '
		/^debugfs: ls -l / { d = substr($0, 16); gsub(/^"|"$/, "", d); if (d == "/") d = ""; next }
		match($0, /^ *[0-9]+ +[0-7]+ +\([0-9]+\) +[0-9]+ +[0-9]+ +[0-9]+ +[^ ]+ +[^ ]+ /) {
			name = substr($0, RLENGTH + 1); split($0, f, " ")
			if (name == "." || name == "..") next
			path = root d "/" name; mode = f[2] + 0
			if (length(f[2]) == 6 && substr(f[2], 1, 2) == "10") {   # a regular file: 10PPPP
				perm = substr(f[2], 3)
				if (perm + 0 >= 1000) printf "chmod\t%s\t%s\n", perm, path
				if (seen[f[1]] != "") printf "link\t%s\t%s\n", seen[f[1]], path; else seen[f[1]] = path
			}
		}' | while IFS=$'\t' read -r op a b; do
		case $op in
		chmod) chmod "$a" "$b" ;;
		link) ln -f "$a" "$b" ;;
		esac
	done
	rm -f "$cmds"
}

# part_field DUMP N FIELD: start or size (sectors) or type of partition N in `sfdisk --dump` output.
part_field() {
	echo "$1" | sed -n "s/^[^ ]*[^0-9]$2 : .*$3= *\([0-9A-Za-z]*\).*/\1/p"
}

image() {
	local pios="" deb="" out="" site="" data_mb=2048 headroom=512 packages=() work=""
	while [ $# -gt 0 ]; do
		case $1 in
		--pios) pios=$2; shift 2 ;;
		--deb) deb=$2; shift 2 ;;
		--out) out=$2; shift 2 ;;
		--site) site=$2; shift 2 ;;
		--data-mb) data_mb=$2; shift 2 ;;
		--headroom-mb) headroom=$2; shift 2 ;;
		--packages) packages+=(--packages); shift ;;
		--profile) packages+=(--profile "$2"); shift 2 ;;
		--work) work=$2; shift 2 ;;
		*) die "image: unknown argument $1" ;;
		esac
	done
	[ -n "$pios" ] && [ -n "$deb" ] && [ -n "$out" ] || die "image needs --pios IMAGE[.xz] --deb FILE --out FILE"
	[ -f "$pios" ] || die "--pios $pios: no such file (download Raspberry Pi OS Lite arm64 from raspberrypi.com/software)"
	need_root image
	need sfdisk mcopy mtype debugfs mkfs.ext4 dumpe2fs xz dd
	if [ -z "$work" ]; then
		work=$(mktemp -d "${TMPDIR:-/tmp}/vaora-image.XXXXXX")
		# shellcheck disable=SC2064
		trap "rm -rf '$work'" EXIT
	fi
	mkdir -p "$work"

	local src=$pios
	case $pios in
	*.xz)
		say "decompressing $pios"
		xz -dc "$pios" >"$work/src.img"
		src=$work/src.img
		;;
	esac

	local dump label_id
	dump=$(sfdisk --dump "$src") || die "$src: no partition table (is it a Raspberry Pi OS .img?)"
	echo "$dump" | grep -q '^label: dos' || die "$src: want an MBR (dos) partition table as Raspberry Pi OS has"
	label_id=$(echo "$dump" | awk '/^label-id:/ { print $2 }')
	local s1 n1 s2 n2
	s1=$(part_field "$dump" 1 start)
	n1=$(part_field "$dump" 1 size)
	s2=$(part_field "$dump" 2 start)
	n2=$(part_field "$dump" 2 size)
	[ -n "$s1" ] && [ -n "$s2" ] || die "$src: want two partitions (boot, root), found: $dump"
	dd if="$src" of="$work/boot.vfat" bs=4M iflag=skip_bytes,count_bytes skip=$((s1 * 512)) count=$((n1 * 512)) status=none
	dd if="$src" of="$work/root.ext4" bs=4M iflag=skip_bytes,count_bytes skip=$((s2 * 512)) count=$((n2 * 512)) status=none
	[ "$src" = "$work/src.img" ] && rm -f "$src"

	local uuid
	uuid=$(dumpe2fs -h "$work/root.ext4" 2>/dev/null | awk '/^Filesystem UUID:/ { print $3 }')
	extract_root "$work/root.ext4" "$work/root"
	rm -f "$work/root.ext4"

	# config.txt and cmdline.txt live on the FAT boot partition: out with mtools, edited, back in.
	mkdir -p "$work/boot"
	mcopy -n -i "$work/boot.vfat" ::config.txt ::cmdline.txt "$work/boot/" || die "boot partition has no config.txt or cmdline.txt"
	configure_root --root "$work/root" --deb "$deb" --boot "$work/boot" ${site:+--site "$site"} "${packages[@]}"

	# A new disk identifier per build; PARTUUIDs in cmdline.txt and fstab follow it. Pi OS's first-boot script
	# grows the root partition to the card, which cannot work with the data partition after it: it is removed.
	local new_id
	new_id=0x$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
	local old=${label_id#0x} new=${new_id#0x}
	sed -i "s/PARTUUID=$old-/PARTUUID=$new-/g" "$work/root/etc/fstab" "$work/boot/cmdline.txt"
	sed -i -e 's| init=/usr/lib/raspberrypi-sys-mods/firstboot||' -e 's| init=/usr/lib/raspi-config/init_resize.sh||' \
		"$work/boot/cmdline.txt"
	(cd "$work/boot" && for f in *; do mcopy -o -i "$work/boot.vfat" "$f" "::$f"; done)

	make_rootfs --root "$work/root" --out "$work/rootfs.ext4" --uuid "$uuid" --headroom-mb "$headroom"
	make_data --root "$work/root" --out "$work/data.ext4" --data-mb "$data_mb"
	rm -rf "$work/root"

	# Partitions aligned to 4 MiB (8192 sectors); the boot partition stays where the Pi's firmware looks for it.
	local align=8192 rs ds n2new n3
	n2new=$(($(stat -c %s "$work/rootfs.ext4") / 512))
	n3=$(($(stat -c %s "$work/data.ext4") / 512))
	rs=$(((s1 + n1 + align - 1) / align * align))
	ds=$(((rs + n2new + align - 1) / align * align))
	rm -f "$out"
	truncate -s $(((ds + n3 + align) * 512)) "$out"
	printf 'label: dos\nlabel-id: %s\nunit: sectors\n\nstart=%s, size=%s, type=c\nstart=%s, size=%s, type=83\nstart=%s, size=%s, type=83\n' \
		"$new_id" "$s1" "$n1" "$rs" "$n2new" "$ds" "$n3" | sfdisk --quiet "$out"
	dd if="$work/boot.vfat" of="$out" bs=4M oflag=seek_bytes seek=$((s1 * 512)) conv=notrunc,sparse status=none
	dd if="$work/rootfs.ext4" of="$out" bs=4M oflag=seek_bytes seek=$((rs * 512)) conv=notrunc,sparse status=none
	dd if="$work/data.ext4" of="$out" bs=4M oflag=seek_bytes seek=$((ds * 512)) conv=notrunc,sparse status=none
	say "wrote $out ($(($(stat -c %s "$out") / 1048576)) MiB): boot, root (PARTUUID $new-02), data (LABEL=vaora-data)"
	say "write it to an SD card with Raspberry Pi Imager (Use custom) or: dd if=$out of=/dev/sdX bs=4M conv=fsync"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
configure-root) configure_root "$@" ;;
make-rootfs) make_rootfs "$@" ;;
make-data) make_data "$@" ;;
image) image "$@" ;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
