# bootres: checks and the writer shared by the DHCP clients' hooks (/usr/lib/bootres/lease.sh).
#
# Sourced inside a subshell by /etc/dhcp/dhclient-enter-hooks.d/bootres and
# /usr/lib/dhcpcd/dhcpcd-hooks/19-bootres: nothing here leaks into the DHCP
# client's script. Lease values are untrusted: only IP addresses become
# nameservers and only plain host names become search domains; nothing is
# ever evaluated. POSIX sh (dash), safe under set -eu.

is_ipv4() {
	case $1 in
	*[!0-9.]* | .* | *. | *..*) return 1 ;;
	esac
	IFS=.
	set -- $1
	unset IFS
	[ $# -eq 4 ] || return 1
	for octet; do
		case $octet in
		0?* | ????*) return 1 ;; # leading zero (octal to inet_aton) or too long
		esac
		[ "$octet" -le 255 ] || return 1
	done
}

is_ipv6() {
	addr=$1
	case $addr in
	'' | : | *[!0-9A-Fa-f:.]* | *:::* | *::*::* | :[!:]* | *[!:]:) return 1 ;;
	esac
	case $addr in
	*.*) # an embedded IPv4 address ends it and counts as two groups
		v4=${addr##*:}
		is_ipv4 "$v4" || return 1
		addr=${addr%"$v4"}0:0
		;;
	esac
	case $addr in
	*.*) return 1 ;;
	esac
	IFS=:
	set -- $addr
	unset IFS
	groups=0
	for group; do
		[ -n "$group" ] || continue # the gap of "::"
		[ ${#group} -le 4 ] || return 1
		groups=$((groups + 1))
	done
	case $addr in
	*::*) [ $groups -le 7 ] ;; # "::" stands for at least one group
	*) [ $groups -eq 8 ] ;;
	esac
}

is_address() {
	is_ipv4 "$1" || is_ipv6 "$1"
}

# A Linux interface name (at most 15 characters), the only lease value that becomes part of a path.
is_ifname() {
	case $1 in
	'' | .* | *[!A-Za-z0-9_.-]* | ????????????????*) return 1 ;;
	esac
}

is_domain() {
	name=${1%.}
	case $name in
	'' | *[!A-Za-z0-9.-]* | .* | *. | *..* | -* | *- | *-.* | *.-*) return 1 ;;
	esac
	[ ${#name} -le 253 ] || return 1
	IFS=.
	set -- $name
	unset IFS
	for label; do
		[ ${#label} -le 63 ] || return 1
	done
}

# Write DIR/NAME in resolv.conf format from untrusted values, atomically; remove it when nothing is valid.
# $1 DIR, $2 NAME, $3 what the comment line says wrote it, $4 the address check (is_ipv4, is_ipv6 or
# is_address), $5 nameservers, $6 search domains, $7 the interface (for link-local nameservers).
# Every value dropped adds one to $dropped.
write_source() {
	servers= domains=
	for value in $5; do
		if ! $4 "$value"; then
			dropped=$((dropped + 1))
			continue
		fi
		case $value in
		[Ff][Ee][89AaBb][0-9A-Fa-f]:*) value=$value%$7 ;; # link-local: name the link, as dhclient-script does
		esac
		case " $servers " in
		*" $value "*) ;;
		*) servers="$servers $value" ;;
		esac
	done
	for value in $6; do
		if ! is_domain "$value"; then
			dropped=$((dropped + 1))
			continue
		fi
		value=${value%.}
		case " $domains " in
		*" $value "*) ;;
		*) domains="$domains $value" ;;
		esac
	done
	target=$1/$2
	if [ -z "$servers$domains" ]; then
		rm -f "$target"
		return
	fi
	mkdir -p "$1" || return
	temp=$1/.$2.$$
	{
		printf '# written by %s\n' "$3"
		[ -z "$domains" ] || printf 'search%s\n' "$domains"
		for value in $servers; do
			printf 'nameserver %s\n' "$value"
		done
	} >"$temp" && mv -f "$temp" "$target" || rm -f "$temp"
}
