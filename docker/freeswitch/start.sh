#!/bin/sh
# Entry point of the lab stack's FreeSWITCH container: merge freeswitch-conf/ into the image's
# stock configuration the way freeswitch-conf/README.md tells an admin to, then run FreeSWITCH
# in the foreground.
set -eu

conf=/etc/freeswitch
drop_in=/robocall/freeswitch-conf
lab=/robocall/docker-freeswitch

: "${ROBOCALL_ESL_PASSWORD:?set ROBOCALL_ESL_PASSWORD (see docker/README.md)}"
case "$ROBOCALL_ESL_PASSWORD" in
    *[!A-Za-z0-9._-]*)
        # It is written into XML with sed: keep it to characters that need no escaping there.
        echo "ROBOCALL_ESL_PASSWORD: use letters, digits, '.', '_' and '-' only" >&2
        exit 64
        ;;
esac

# Steps 1 and 2 of the README: the new files, and the gateway filled in (here: the SIPp callee).
cp "$drop_in/sip_profiles/robocall.xml" "$conf/sip_profiles/robocall.xml"
mkdir -p "$conf/sip_profiles/robocall"
cp "$lab/trunk.xml" "$conf/sip_profiles/robocall/trunk.xml"
cp "$drop_in/dialplan/robocall.xml" "$conf/dialplan/robocall.xml"
# Steps 3 and 4: the module list (the image's own is the stock empty one) and the event socket,
# with the password changed.
cp "$drop_in/autoload_configs/post_load_modules.conf.xml" "$conf/autoload_configs/"
sed "s/CHANGE-ME-robocall-esl-password/$ROBOCALL_ESL_PASSWORD/" \
    "$drop_in/autoload_configs/event_socket.conf.xml" > "$conf/autoload_configs/event_socket.conf.xml"

# Lab stack only: no public STUN lookup for the external address, and no stock external profile.
sed -i 's#cmd="stun-set" data="\(external_[a-z]*_ip\)=stun:stun.freeswitch.org"#cmd="set" data="\1=$${local_ip_v4}"#' \
    "$conf/vars.xml"
rm -rf "$conf/sip_profiles/external.xml" "$conf/sip_profiles/external" \
    "$conf/sip_profiles/external-ipv6.xml" "$conf/sip_profiles/external-ipv6" \
    "$conf/sip_profiles/internal-ipv6.xml"

# robocall (uid 10001 in docker/Dockerfile) writes its database and rendered messages here;
# FreeSWITCH reads the messages and writes the recordings at the same paths.
install -d -o 10001 -g 10001 /var/lib/robocall /var/lib/robocall/recordings

exec freeswitch -nonat -nf -nc
