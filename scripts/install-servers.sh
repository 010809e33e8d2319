#!/usr/bin/env bash
# Installs the real servers and clients the tests use, when they are missing
# and this machine can install Debian packages (root with apt-get). Otherwise
# it says what is missing; the tests then skip (or fail when
# MSGTRACK_REQUIRE_SERVERS=1). .ci/run and `make test` both call it.
set -u
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have memcached  || need+=(memcached)
have slapd      || need+=(slapd)
have ldapsearch || need+=(ldap-utils)
have python3    || need+=(python3)
have swaks      || need+=(swaks)
# swaks only recommends the Perl module it needs for STARTTLS and
# --tls-on-connect; the tests use both.
perl -MNet::SSLeay -e 1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-servers: missing ${need[*]} (apt-get install ${need[*]}); tests that need them will skip" >&2
  exit 0
fi
echo "install-servers: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's packages start system instances; the tests start their own on
# free loopback ports, so the system ones are not needed.
for svc in memcached slapd; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
exit 0
