#!/usr/bin/env bash
# A complete ssh-acme client made only of curl, ssh-keygen and coreutils, written from
# docs/acme-protocol.md alone: it registers KEY, orders a user certificate for PRINCIPAL with
# KEY as the certificate's key, finalizes with a proof of possession and prints the certificate.
# Usage: acme-curl.sh SERVER_URL KEY PRINCIPAL
set -euo pipefail

server=$1 key=$2 principal=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

b64url() { basenc --base64url -w0 | tr -d '='; }
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
header() { tr -d '\r' | sed -n "s/^$1: //Ip"; }

dir=$(curl -fsS "$server/directory")
new_nonce=$(json_field newNonce <<<"$dir")
new_account=$(json_field newAccount <<<"$dir")
new_order=$(json_field newOrder <<<"$dir")
nonce=$(curl -fsS -I "$new_nonce" | header replay-nonce)

# post URL PAYLOAD [kid]: a signed request (section 3); sets $nonce from the answer and
# leaves headers in $work/h and the body in $work/b.
post() {
  local url=$1 payload=$2 kid=${3:-} auth p b s
  if [ -n "$kid" ]; then auth="\"kid\":\"$kid\""; else auth="\"key\":\"$(cut -d' ' -f1,2 "$key.pub")\""; fi
  p=$(printf '{"alg":"sshsig","nonce":"%s","url":"%s",%s}' "$nonce" "$url" "$auth" | b64url)
  b=$(printf '%s' "$payload" | b64url)
  printf '%s.%s' "$p" "$b" >"$work/in"
  rm -f "$work/in.sig"
  ssh-keygen -Y sign -q -n ssh-acme-v1 -f "$key" "$work/in"
  s=$(sed '1d;$d' "$work/in.sig" | tr -d '\n' | base64 -d | b64url)
  curl -sS -D "$work/h" -o "$work/b" -H 'Content-Type: application/json' \
    -d "{\"protected\":\"$p\",\"payload\":\"$b\",\"signature\":\"$s\"}" "$url"
  nonce=$(header replay-nonce <"$work/h")
  if grep -q '^HTTP/1.1 [45]' "$work/h"; then cat "$work/b" >&2; echo >&2; exit 1; fi
}

post "$new_account" '{"termsOfServiceAgreed":true}'
kid=$(header location <"$work/h")

pubkey=$(cut -d' ' -f1,2 "$key.pub")
post "$new_order" "{\"certType\":\"user\",\"identifiers\":[{\"type\":\"principal\",\"value\":\"$principal\"}],\"publicKey\":\"$pubkey\"}" "$kid"
order_url=$(header location <"$work/h")
finalize=$(json_field finalize <"$work/b")

# Proof of possession (section 8): the certificate's key signs "<order URL>\n<account fp>".
fp=$(ssh-keygen -l -E sha256 -f "$key.pub" | cut -d' ' -f2)
printf '%s\n%s' "$order_url" "$fp" >"$work/pop"
ssh-keygen -Y sign -q -n ssh-acme-pop-v1 -f "$key" "$work/pop"
pop=$(sed '1d;$d' "$work/pop.sig" | tr -d '\n' | base64 -d | b64url)
post "$finalize" "{\"pop\":\"$pop\"}" "$kid"
cert_url=$(json_field certificate <"$work/b")

post "$cert_url" '' "$kid"
cat "$work/b"
