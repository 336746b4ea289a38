#!/bin/sh
# certs.sh DIR: writes a throwaway test PKI into DIR (created if needed):
#   ca.pem, ca.key          a CA ("ferry test CA")
#   server.pem, server.key  a server certificate signed by it, valid for
#                           IP:127.0.0.1 and DNS:localhost
#   other-ca.pem            an unrelated CA, for "unknown CA" tests
# EC P-256 keys (fast), 2 days validity, quiet unless something fails.
set -e
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
d=$1
mkdir -p "$d"
log="$d/.certs.log"
: >"$log"
run() {
    "$@" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}
ec() {
    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$1"
}

ec "$d/ca.key"
run openssl req -x509 -new -key "$d/ca.key" -sha256 -days 2 \
    -subj "/CN=ferry test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.pem"

ec "$d/server.key"
run openssl req -new -key "$d/server.key" -subj "/CN=localhost" \
    -out "$d/server.csr"
printf '%s\n' \
    "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext"
run openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" \
    -CAkey "$d/ca.key" -CAcreateserial -days 2 -sha256 \
    -extfile "$d/server.ext" -out "$d/server.pem"

ec "$d/other-ca.key"
run openssl req -x509 -new -key "$d/other-ca.key" -sha256 -days 2 \
    -subj "/CN=ferry unrelated test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/other-ca.pem"

rm -f "$d/server.csr" "$d/server.ext" "$d/ca.srl" "$d/other-ca.key" "$log"
chmod 600 "$d/ca.key" "$d/server.key"
