#!/usr/bin/env bash
# System tests: the `privatus` binary driven as a user would, checked with outside tools
# (PyCA cryptography for the keystore format, stat for the file modes).
# usage: Tests/System/run.sh PATH-TO-privatus
set -euo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/privatus-system-XXXXXX)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home"   # never the real $HOME
passed=0
failed=0

check() { # name, command...
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
    fi
}

profile="$work/alice"
init_json=$(PRIVATUS_PASSWORD=x "$bin" --profile "$profile" init --name alice --json)
peer=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["peerId"])' <<<"$init_json")

same_peer_every_run() {
    for _ in 1 2; do
        local shown
        shown=$(PRIVATUS_PASSWORD=x "$bin" --profile "$profile" id --json)
        [[ $(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["peerId"])' <<<"$shown") == "$peer" ]] || return 1
    done
    [[ $peer =~ ^[0-9a-f]{64}$ ]]
}
check "init then id --json shows the same 64-hex PeerID every run" same_peer_every_run

wrong_password_changes_nothing() {
    local before after status=0 err
    before=$(cd "$profile" && find . -printf '%p %m %s %T@\n' | sort && find . -type f -exec sha256sum {} + | sort)
    err=$(PRIVATUS_PASSWORD=wrong "$bin" --profile "$profile" id 2>&1 >/dev/null) || status=$?
    after=$(cd "$profile" && find . -printf '%p %m %s %T@\n' | sort && find . -type f -exec sha256sum {} + | sort)
    [[ $status -eq 4 && $err == "privatus: wrong password" && "$before" == "$after" ]]
}
check "a wrong password exits 4 with one line and leaves every file unchanged" wrong_password_changes_nothing

nothing_readable_by_others() {
    [[ $(stat -c %a "$profile") == 700 ]] && [[ -z $(find "$profile" -perm /077) ]]
}
check "no file in the profile is readable by group or others" nothing_readable_by_others

check "the keystore format matches docs/PROTOCOL.md (PyCA cryptography)" \
    /usr/bin/python3 "$here/keystore_crosscheck.py" "$profile" x

passwd_then_crosscheck() {
    PRIVATUS_PASSWORD=x PRIVATUS_NEW_PASSWORD='nouveau mot de passe é' "$bin" --profile "$profile" passwd >/dev/null &&
        /usr/bin/python3 "$here/keystore_crosscheck.py" "$profile" 'nouveau mot de passe é' &&
        [[ $(/usr/bin/python3 "$here/keystore_crosscheck.py" "$profile" x 2>&1) == *"AssertionError: key check value"* ]]
}
check "after passwd only the new password opens the keystore (PyCA cryptography)" passwd_then_crosscheck

no_peer_id_in_logs() {
    [[ -s $profile/logs/privatus.log ]] && ! grep -rq "$peer" "$profile/logs"
}
check "the logs at the default level never contain the PeerID" no_peer_id_in_logs

echo "system: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
