#!/usr/bin/env bash
# System packages the project needs beyond Python: PostgreSQL >= 15 server binaries, psql, Node.js/npm
# (for the pinned Supabase CLI), TrueType fonts for the PDF reports (one per script: reportlab embeds
# TrueType outlines only), and poppler-utils + qpdf, with which the report tests read PDFs back. Installed
# with apt-get when running as root on Debian/Ubuntu; otherwise a clear message says what to install.
set -euo pipefail

missing=()
have_pg_server() {
  local d
  for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && return 0
  done
  return 1
}
have_pg_server || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
have_font() { find /usr/share/fonts /usr/local/share/fonts -name "$1" -print -quit 2>/dev/null | grep -q .; }
have_font NotoSans-Regular.ttf && have_font NotoSansThai-Regular.ttf || missing+=(fonts-noto-core)
have_font NanumGothic.ttf || missing+=(fonts-nanum)
have_font ipagp.ttf || missing+=(fonts-ipafont-gothic)
have_font wqy-zenhei.ttc || missing+=(fonts-wqy-zenhei)
command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null && command -v pdffonts >/dev/null ||
  missing+=(poppler-utils)
command -v qpdf >/dev/null || missing+=(qpdf)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[setup] installing system packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi

cat >&2 <<MSG
Missing system packages: ${missing[*]}
  Debian/Ubuntu: sudo apt-get install ${missing[*]}
  macOS:         brew install postgresql@15 node poppler qpdf
PostgreSQL >= 15 server binaries (initdb, pg_ctl) and Node.js >= 18 with npm are required.
Reports need NotoSans, NotoSansThai, NanumGothic, IPAPGothic (ipagp.ttf) and WenQuanYi Zen Hei font files
(elsewhere than Debian: put them in a directory listed in DTX_FONT_DIRS).
MSG
exit 1
