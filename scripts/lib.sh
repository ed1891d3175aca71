# Shared by the scripts: source scripts/lib.sh

# /run/netns is made on first use (as ip netns add makes it: a shared bind
# mount on itself). A script that finds it absent removes it at the end,
# once empty, so the machine is left as it was found.
run_netns_was_there=false
[[ -d /run/netns ]] && run_netns_was_there=true

remove_run_netns_if_new() {
	if ! $run_netns_was_there && [[ -d /run/netns && -z $(ls -A /run/netns) ]]; then
		for _ in 1 2 3 4 5; do mountpoint -q /run/netns && umount -l /run/netns; done
		rmdir /run/netns 2>/dev/null || true
	fi
}

# iptables-nft makes its tables (ip filter, ip nat, ...) the first time a
# rule goes in, and nothing removes them. A script whose own iptables
# commands may make them removes, at the end, those it found absent that
# hold nothing (no rule, set or chain of their own, every policy accept),
# as nsrun's down does.
nft_tables_before=$(nft list tables 2>/dev/null || true)

remove_iptables_tables_if_new() {
	command -v nft >/dev/null || return 0
	local fam table
	for fam in ip ip6; do
		for table in filter nat mangle raw; do
			grep -qx "table $fam $table" <<<"$nft_tables_before" && continue
			nft list table "$fam" "$table" >/dev/null 2>&1 || continue
			nft -j list table "$fam" "$table" 2>/dev/null | python3 -c '
import json, sys
objs = json.load(sys.stdin)["nftables"]
def busy(o):
    if any(k in o for k in ("rule", "set", "map", "element")):
        return True
    c = o.get("chain")
    return c is not None and ("hook" not in c or c.get("policy", "accept") != "accept")
sys.exit(1 if any(busy(o) for o in objs) else 0)' && nft delete table "$fam" "$table"
		done
	done
	return 0
}
