# Sourced by the QEMU scripts: sets QEMU to a qemu-system-arm that models mps2-an386, installing one
# into target/qemu if the machine has none. Debian's package would replace the machine's newer
# qemu-utils, so its files are unpacked into a folder of our own instead; only its libraries are
# installed system-wide.
find_qemu() {
  local root="$1/target/qemu"
  if command -v qemu-system-arm >/dev/null && qemu-system-arm -machine help 2>/dev/null | grep -q mps2-an386; then
    QEMU=$(command -v qemu-system-arm); return 0
  fi
  if [ -x "$root/usr/bin/qemu-system-arm" ]; then
    QEMU="$root/usr/bin/qemu-system-arm"; return 0
  fi
  command -v apt-get >/dev/null || { echo "no apt-get to fetch qemu-system-arm"; return 1; }
  mkdir -p "$root/debs"
  (cd "$root/debs" && apt-get download qemu-system-arm qemu-system-data >/dev/null 2>&1) \
    || { apt-get update -qq >/dev/null 2>&1 && (cd "$root/debs" && apt-get download qemu-system-arm qemu-system-data >/dev/null 2>&1); } \
    || { echo "apt-get download qemu-system-arm failed"; return 1; }
  for d in "$root"/debs/*.deb; do dpkg -x "$d" "$root"; done
  apt-get install -y -qq --no-install-recommends libfdt1 libcapstone4 libpmem1 librdmacm1 libibverbs1 \
    libslirp0 libvdeplug2 >/dev/null 2>&1 || { echo "installing QEMU's libraries failed"; return 1; }
  QEMU="$root/usr/bin/qemu-system-arm"
  "$QEMU" --version >/dev/null 2>&1 || { echo "the unpacked qemu-system-arm does not run"; return 1; }
}
