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
