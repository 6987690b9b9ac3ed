#!/bin/sh
# mkcerts.sh: makes the test certificates in DIR with the openssl command (nothing is checked in).
# Usage: tests/tls/mkcerts.sh DIR
# Writes, each as NAME.pem (certificate) and NAME.key (unencrypted key):
#   ca        the test CA (trusted by the tests)
#   server    localhost, 127.0.0.1 and ::1 (SAN), signed by ca
#   client    a client certificate (clientAuth) signed by ca
#   expired   like server, but valid only in 2020, signed by ca
#   wrongname wrong.example only, signed by ca
#   otherca   a second CA nobody trusts
#   untrusted like server, signed by otherca
# Exit status 0 when all are made; the openssl output is kept quiet.
set -eu
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"

q() { "$@" >/dev/null 2>&1 || { echo "mkcerts.sh: failed: $*" >&2; exit 1; }; }

key() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }

mkca() {
    key "$1"
    q openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem"
}

# leaf NAME CA CN SAN EKU
leaf() {
    key "$1"
    q openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s\n' \
        "$5" "$4" > "$1.ext"
    q openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
        -days 825 -sha256 -extfile "$1.ext" -out "$1.pem"
    rm -f "$1.csr" "$1.ext"
}

mkca ca "msgsock test CA"
mkca otherca "msgsock other CA"
leaf server ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth,clientAuth
leaf client ca "msgsock test client" "" clientAuth,serverAuth
leaf wrongname ca wrong.example "subjectAltName=DNS:wrong.example" serverAuth,clientAuth
leaf untrusted otherca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth,clientAuth

# An expired certificate: 'openssl ca' takes explicit start and end dates.
key expired
q openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir -p ca.db
: > ca.db/index.txt
echo 1000 > ca.db/serial
cat > ca.db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = ca.db
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = ext
[any]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
CNF
q openssl ca -batch -config ca.db/ca.cnf -startdate 20200101000000Z -enddate 20200201000000Z \
    -in expired.csr -out expired.pem -notext
rm -rf expired.csr ca.db ca.srl otherca.srl
exit 0
