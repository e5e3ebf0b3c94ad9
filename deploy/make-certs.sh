#!/usr/bin/env bash
# Makes a demo certificate authority and the certificates busyfleet needs for
# TLS and mutual TLS, with openssl.
#
#   deploy/make-certs.sh OUTDIR [--server-names "localhost,127.0.0.1,coordinator"]
#                               [--clients "worker,coordctl"] [--force]
#
# Writes into OUTDIR:
#   ca.pem, ca.key           the demo CA (keep ca.key away from the cluster)
#   server.pem, server.key   the coordinator's certificate (serverAuth); its
#                            subject alternative names are --server-names: IP
#                            addresses as IP SANs, anything else as DNS SANs
#                            (default: localhost, 127.0.0.1, ::1 and this host's name)
#   NAME.pem, NAME.key       one client certificate (clientAuth) per --clients
#                            name (default: worker, coordctl), for mutual TLS
#
# EC P-256 keys, SHA-256 signatures, 825 days of validity, keys mode 600.
# Refuses to write into an existing, non-empty OUTDIR unless --force (which
# replaces the files above and leaves any others alone). Nothing is written to
# OUTDIR until every certificate has been made and verified.
#
# This is a demo CA for trying TLS out; for production use your own PKI.
set -euo pipefail

PROG="${0##*/}"
DAYS=825

usage() {
    cat <<EOF
Usage: $PROG OUTDIR [--server-names "NAME,..."] [--clients "NAME,..."] [--force]

Makes a demo CA, a coordinator (server) certificate and client certificates.

  --server-names LIST  names in the server certificate, comma-separated; IP
                       addresses become IP SANs, others DNS SANs
                       (default: localhost,127.0.0.1,::1,\$(hostname))
  --clients LIST       client certificates to make, comma-separated
                       (default: worker,coordctl; "" makes none)
  --force              overwrite the files of an existing OUTDIR
  -h, --help           this help
EOF
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: $*" >&2
    echo "Try '$PROG --help'." >&2
    exit 2
}

# ---- arguments -------------------------------------------------------------
outdir=""
server_names=""
server_names_set=0
clients="worker,coordctl"
force=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --force) force=1; shift ;;
        --server-names)
            [[ $# -ge 2 ]] || usage_error "--server-names needs a value"
            server_names="$2"; server_names_set=1; shift 2 ;;
        --server-names=*) server_names="${1#*=}"; server_names_set=1; shift ;;
        --clients)
            [[ $# -ge 2 ]] || usage_error "--clients needs a value"
            clients="$2"; shift 2 ;;
        --clients=*) clients="${1#*=}"; shift ;;
        --) shift
            [[ $# -le 1 ]] || usage_error "too many arguments: $*"
            if [[ $# -eq 1 ]]; then
                [[ -z "$outdir" ]] || usage_error "more than one OUTDIR: '$outdir' and '$1'"
                outdir="$1"; shift
            fi ;;
        -*) usage_error "unknown option: $1" ;;
        *)
            [[ -z "$outdir" ]] || usage_error "more than one OUTDIR: '$outdir' and '$1'"
            outdir="$1"; shift ;;
    esac
done

[[ -n "$outdir" ]] || usage_error "missing OUTDIR"
command -v openssl >/dev/null 2>&1 || die "openssl not found (Debian/Ubuntu: apt-get install openssl)"

# ---- names -----------------------------------------------------------------
trim() {
    local s="$1"
    s="${s#"${s%%[![:space:]]*}"}"
    s="${s%"${s##*[![:space:]]}"}"
    printf '%s' "$s"
}

is_ipv4() {
    local ip="$1" part
    [[ "$ip" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || return 1
    IFS=. read -r -a parts <<<"$ip"
    for part in "${parts[@]}"; do
        (( 10#$part <= 255 )) || return 1
    done
}

is_ipv6() {
    [[ "$1" == *:* && "$1" =~ ^[0-9A-Fa-f:.]+$ ]]
}

is_dns_name() {
    # Letters, digits, hyphens and dots; an optional leading "*." wildcard.
    [[ "$1" =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$ ]] &&
        [[ ${#1} -le 253 ]]
}

if [[ $server_names_set -eq 0 ]]; then
    host="$(hostname 2>/dev/null || uname -n 2>/dev/null || true)"
    server_names="localhost,127.0.0.1,::1"
    if [[ -n "$host" && "$host" != "localhost" ]] && is_dns_name "$host"; then
        server_names+=",$host"
    fi
fi

san_list=()        # openssl subjectAltName entries
seen_names=" "
first_dns=""
first_name=""
IFS=, read -r -a raw_names <<<"$server_names"
for raw in "${raw_names[@]}"; do
    name="$(trim "$raw")"
    [[ -n "$name" ]] || continue
    # IPv6 literals may come in brackets, as in host:port syntax.
    if [[ "$name" == \[*\] ]]; then name="${name#[}"; name="${name%]}"; fi
    [[ "$seen_names" == *" $name "* ]] && continue
    seen_names+="$name "
    if is_ipv4 "$name" || is_ipv6 "$name"; then
        san_list+=("IP:$name")
    elif is_dns_name "$name"; then
        san_list+=("DNS:$name")
        [[ -n "$first_dns" ]] || first_dns="$name"
    else
        usage_error "--server-names: '$name' is neither an IP address nor a valid DNS name"
    fi
    [[ -n "$first_name" ]] || first_name="$name"
done
[[ ${#san_list[@]} -gt 0 ]] || usage_error "--server-names: no names given"
server_cn="${first_dns:-$first_name}"
san_value="$(IFS=,; printf '%s' "${san_list[*]}")"

client_list=()
seen_clients=" "
IFS=, read -r -a raw_clients <<<"$clients"
for raw in "${raw_clients[@]}"; do
    name="$(trim "$raw")"
    [[ -n "$name" ]] || continue
    [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
        usage_error "--clients: '$name' is not a valid client name (letters, digits, '.', '_', '-'; at most 64)"
    case "$name" in
        ca|server) usage_error "--clients: '$name' would overwrite $name.pem; choose another name" ;;
    esac
    [[ "$seen_clients" == *" $name "* ]] && continue
    seen_clients+="$name "
    client_list+=("$name")
done

# ---- output directory ------------------------------------------------------
if [[ -e "$outdir" && ! -d "$outdir" ]]; then
    die "'$outdir' exists and is not a directory"
fi
if [[ -d "$outdir" ]] && [[ -n "$(ls -A "$outdir" 2>/dev/null)" ]] && [[ $force -eq 0 ]]; then
    die "'$outdir' already exists and is not empty; pass --force to overwrite its certificates and keys"
fi
mkdir -p "$outdir" || die "cannot create '$outdir'"
[[ -w "$outdir" ]] || die "'$outdir' is not writable"
outdir_abs="$(cd "$outdir" && pwd -P)"

# Everything is made in a private staging directory next to OUTDIR (same file
# system, so the final moves are renames) and verified before it is moved in.
umask 077
stage="$(mktemp -d "$outdir_abs/.make-certs.XXXXXX")" || die "cannot create a staging directory in '$outdir'"
trap 'rm -rf "$stage"' EXIT

run_openssl() {
    local log="$stage/openssl.log"
    if ! openssl "$@" >"$log" 2>&1; then
        echo "$PROG: error: openssl $1 failed:" >&2
        sed 's/^/  /' "$log" >&2
        exit 1
    fi
}

new_key() {
    run_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
    chmod 600 "$1"
}

new_serial() {
    # 120 random bits, with a leading 1 so it is never zero or negative.
    printf '0x1%s' "$(openssl rand -hex 15)"
}

# The CA.
new_key "$stage/ca.key"
cat >"$stage/ca.ext" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = busyfleet demo CA
O = busyfleet
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
run_openssl req -new -x509 -sha256 -days "$DAYS" -key "$stage/ca.key" \
    -config "$stage/ca.ext" -extensions v3_ca -set_serial "$(new_serial)" -out "$stage/ca.pem"

# sign NAME CN EXTENSIONS...: NAME.key, NAME.pem signed by the CA.
sign() {
    local name="$1" cn="$2"
    shift 2
    new_key "$stage/$name.key"
    run_openssl req -new -sha256 -key "$stage/$name.key" -subj "/O=busyfleet/CN=$cn" -out "$stage/$name.csr"
    {
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyAgreement"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid, issuer"
        printf '%s\n' "$@"
    } >"$stage/$name.ext"
    run_openssl x509 -req -sha256 -days "$DAYS" -in "$stage/$name.csr" \
        -CA "$stage/ca.pem" -CAkey "$stage/ca.key" -set_serial "$(new_serial)" \
        -extfile "$stage/$name.ext" -out "$stage/$name.pem"
    rm -f "$stage/$name.csr" "$stage/$name.ext"
}

sign server "$server_cn" "extendedKeyUsage = serverAuth" "subjectAltName = $san_value"
run_openssl verify -CAfile "$stage/ca.pem" -purpose sslserver "$stage/server.pem"

for c in "${client_list[@]+"${client_list[@]}"}"; do
    sign "$c" "$c" "extendedKeyUsage = clientAuth"
    run_openssl verify -CAfile "$stage/ca.pem" -purpose sslclient "$stage/$c.pem"
done

# ---- move into place -------------------------------------------------------
files=(ca.pem ca.key server.pem server.key)
for c in "${client_list[@]+"${client_list[@]}"}"; do
    files+=("$c.pem" "$c.key")
done
for f in "${files[@]}"; do
    case "$f" in
        *.key) chmod 600 "$stage/$f" ;;
        *.pem) chmod 644 "$stage/$f" ;;
    esac
    mv -f "$stage/$f" "$outdir_abs/$f"
done

# With --force, certificates left from an earlier run are not signed by the
# new CA any more: say so rather than delete files this run did not make.
stale=()
for f in "$outdir_abs"/*.pem; do
    [[ -e "$f" ]] || continue
    base="$(basename "$f")"
    [[ " ${files[*]} " == *" $base "* ]] || stale+=("$base")
done
if [[ ${#stale[@]} -gt 0 ]]; then
    echo "$PROG: warning: not made by this run, so not signed by the new CA: ${stale[*]}" >&2
fi

# ---- how to use them -------------------------------------------------------
d="$outdir_abs"
q() { printf '%q' "$1"; }
echo "Made in $d:"
for f in "${files[@]}"; do
    echo "  $f"
done
echo
echo "Server certificate names: ${san_value//,/, }"
echo "The CA key $(q "$d/ca.key") can sign new certificates: keep it off the cluster."
echo
echo "TLS (the coordinator proves who it is):"
echo "  coordinator --tls-cert $(q "$d/server.pem") --tls-key $(q "$d/server.key")"
echo "  worker      --tls-ca $(q "$d/ca.pem")"
echo "  coordctl    --tls-ca $(q "$d/ca.pem")"
echo
if [[ ${#client_list[@]} -gt 0 ]]; then
    echo "Mutual TLS (clients prove who they are, too):"
    echo "  coordinator --tls-cert $(q "$d/server.pem") --tls-key $(q "$d/server.key") --tls-client-ca $(q "$d/ca.pem")"
    for c in "${client_list[@]}"; do
        case "$c" in
            worker|worker[-_.]*) who="worker     " ;;
            coordctl|coordctl[-_.]*) who="coordctl   " ;;
            *) who="worker or coordctl ($c)" ;;
        esac
        echo "  $who --tls-ca $(q "$d/ca.pem") --tls-cert $(q "$d/$c.pem") --tls-key $(q "$d/$c.key")"
    done
    echo
fi
echo "Dial the coordinator by one of the server certificate names, or add"
echo "  --tls-server-name $(q "$server_cn")"
echo "to worker and coordctl when the address you dial is not among them."
