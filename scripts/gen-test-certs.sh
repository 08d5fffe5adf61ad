#!/usr/bin/env bash
# Generates a development CA, a server certificate and a client certificate (X.509 v3, as rustls
# requires) into DIR (default: tests/tls). The server certificate names 127.0.0.1, ::1 and
# localhost. Also writes an untrusted CA and a client certificate it signed, for negative tests.
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
ca untrusted-ca "/O=somebody else/CN=untrusted CA"
leaf untrusted-client "/O=somebody else/CN=untrusted-client" untrusted-ca clientAuth ""
rm -f ./*.srl
chmod 600 ./*.key
echo "certificates written to $(pwd)"
