#!/bin/sh
# A local certificate authority and one certificate for NATS, for trying TLS
# on one machine or a private network. Production uses your own PKI.
#
# usage: scripts/tls-certs.sh DIR [NAME...]
#   NAME: DNS names and IP addresses the servers are reached at
#         (default: localhost 127.0.0.1)
# writes DIR/ca.pem, DIR/ca-key.pem   the CA (keep ca-key.pem offline)
#        DIR/server.pem, DIR/server-key.pem
#                                     for client TLS and for routes (server and
#                                     client use), valid for every NAME
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DIR [NAME...]" >&2; exit 2; }
dir=$1
shift
[ $# -gt 0 ] || set -- localhost 127.0.0.1
mkdir -p "$dir"
cd "$dir"
umask 077

san=""
for name in "$@"; do
  case $name in
    *[!0-9.]*) entry="DNS:$name" ;;  # anything but digits and dots: a host name
    *) entry="IP:$name" ;;
  esac
  san="${san:+$san,}$entry"
done

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 825 \
  -keyout ca-key.pem -out ca.pem -subj "/CN=natsmesh local CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
  -keyout server-key.pem -out server.csr -subj "/CN=nats" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' "$san" > server.ext
openssl x509 -req -sha256 -days 825 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem server.pem
echo "$dir: ca.pem server.pem server-key.pem (for: $*)"
