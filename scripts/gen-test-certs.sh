#!/usr/bin/env bash
# Generates a development CA, a server certificate and a client certificate (X.509 v3, as rustls
# requires) into DIR (default: tests/tls). The server certificate names 127.0.0.1, ::1 and
# localhost. Also writes an untrusted CA and a client certificate it signed, for negative tests,
# and for TLS operations tests: a second server certificate from that other CA (reload), the
# server key encrypted as PKCS#8 (pass "secret"), an X.509 v1 certificate, and expired server and
# client certificates. For ACL identities (tls-auth-clients-user): client certificates whose
# subject CN is alice and nobody, and one (CN carol) with two SAN URIs; and a server certificate
# that names no host, as Redis's utils/gen-test-certs.sh makes them.
#   scripts/gen-test-certs.sh [DIR]
set -euo pipefail
dir=${1:-tests/tls}
mkdir -p "$dir"
cd "$dir"
days=3650

ext() { # name, extendedKeyUsage, extra
  cat > "$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$2
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
$3
EXT
}

ca() { # name, subject
  openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days "$days" \
    -keyout "$1.key" -out "$1.crt" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() { # name, subject, ca, usage, extra
  openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  ext "$1" "$4" "$5"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days "$days" \
    -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "/O=ferrokey dev/CN=ferrokey dev CA"
leaf server "/O=ferrokey dev/CN=localhost" ca serverAuth "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client "/O=ferrokey dev/CN=ferrokey-client" ca clientAuth ""
leaf client-alice "/O=ferrokey dev/CN=alice" ca clientAuth ""
leaf client-nobody "/O=ferrokey dev/CN=nobody" ca clientAuth ""
leaf client-uris "/O=ferrokey dev/CN=carol" ca clientAuth \
  "subjectAltName=URI:spiffe://ferrokey.test/ghost,URI:spiffe://ferrokey.test/bob"
leaf server-nosan "/O=Redis Test/CN=Server" ca serverAuth ""
ca untrusted-ca "/O=somebody else/CN=untrusted CA"
leaf untrusted-client "/O=somebody else/CN=untrusted-client" untrusted-ca clientAuth ""
leaf server-b "/O=somebody else/CN=localhost" untrusted-ca serverAuth "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
openssl pkcs8 -topk8 -v2 aes-256-cbc -in server.key -out server-enc.key -passout pass:secret 2>/dev/null
# v1: no extensions at all.
openssl req -new -key server.key -out v1.csr -subj "/CN=localhost" 2>/dev/null
openssl x509 -req -in v1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -out server-v1.crt 2>/dev/null
# Expired certificates need explicit dates: `openssl ca` takes them.
mkdir -p ca-db && : > ca-db/index.txt && echo 1000 > ca-db/serial
cat > ca-db/ca.cnf <<CNF
[ca]
default_ca = d
[d]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
CNF
expired() { # name, subject, usage, extra
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  ext "$1" "$3" "$4"
  openssl ca -batch -config ca-db/ca.cnf -cert ca.crt -keyfile ca.key -in "$1.csr" -out "$1.crt" \
    -startdate 20200101000000Z -enddate 20200102000000Z -extfile "$1.ext" -notext 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
expired expired-server "/CN=localhost" serverAuth "subjectAltName=DNS:localhost,IP:127.0.0.1"
expired expired-client "/CN=expired-client" clientAuth ""
rm -rf ca-db v1.csr ./*.srl
chmod 600 ./*.key
echo "certificates written to $(pwd)"
