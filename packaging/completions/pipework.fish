# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pipework_global_optspecs
    string join \n i= l= a= direct-phys wait timeout= vlan-filtering no-firewall macvlan-mode= host-access resolv-conf dry-run v/verbose h/help V/version
end

function __fish_pipework_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pipework_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pipework_using_subcommand
    set -l cmd (__fish_pipework_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pipework -n "__fish_pipework_needs_command" -s i -d 'Interface name inside the guest [default: eth1, ib0 on IPoIB]' -r
complete -c pipework -n "__fish_pipework_needs_command" -s l -d 'Host-side name of the veth pair [default: v<CTR_IF>pl<PID>]' -r
complete -c pipework -n "__fish_pipework_needs_command" -s a -d 'Address family: 4, 6, inet or inet6 [default: from the address]' -r
complete -c pipework -n "__fish_pipework_needs_command" -l timeout -d 'With --wait or DHCP: give up after SECS seconds, exit 1 [DHCP default: 10]' -r
complete -c pipework -n "__fish_pipework_needs_command" -l macvlan-mode -d 'On a physical HOSTIF: the macvlan\'s mode [default: bridge]' -r -f -a "bridge\t''
vepa\t''
private\t''
passthru\t''"
complete -c pipework -n "__fish_pipework_needs_command" -l direct-phys -d 'Move the host interface itself into the guest'
complete -c pipework -n "__fish_pipework_needs_command" -l wait -d 'Inside a container: wait until CTR_IF exists, then exit 0'
complete -c pipework -n "__fish_pipework_needs_command" -l vlan-filtering -d 'With @VLAN on an existing Linux bridge: turn its VLAN filtering on (this changes every port; undone if the run fails)'
complete -c pipework -n "__fish_pipework_needs_command" -l no-firewall -d 'Leave the firewall alone: no rule accepting a Linux bridge\'s own traffic where the FORWARD hook would drop it'
complete -c pipework -n "__fish_pipework_needs_command" -l host-access -d 'On a physical HOSTIF: let the host reach the guest, by a macvlan of its own on HOSTIF (pwh-<HOSTIF>) and a host route to the address'
complete -c pipework -n "__fish_pipework_needs_command" -l resolv-conf -d 'With dhcp: write the lease\'s DNS servers and domain into the guest\'s /etc/resolv.conf, kept current at renewals'
complete -c pipework -n "__fish_pipework_needs_command" -l dry-run -d 'Print the plan as iproute2 commands and change nothing'
complete -c pipework -n "__fish_pipework_needs_command" -s v -l verbose -d 'Log each step (-vv for netlink detail); RUST_LOG works too'
complete -c pipework -n "__fish_pipework_needs_command" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_needs_command" -s V -l version -d 'Print version'
complete -c pipework -n "__fish_pipework_needs_command" -a "mkbridge" -d 'Make BRIDGE the host\'s interface in IFACE\'s place, in one safe step'
complete -c pipework -n "__fish_pipework_needs_command" -a "loop" -d 'Loop devices: find a free one, or make sure their nodes exist'
complete -c pipework -n "__fish_pipework_needs_command" -a "completions" -d 'Print the shell completion script for SHELL'
complete -c pipework -n "__fish_pipework_needs_command" -a "show" -d 'List recorded attachments, one line an interface: live, or stale when the kernel lost it'
complete -c pipework -n "__fish_pipework_needs_command" -a "check" -d 'Compare the kernel with the records; exit 1 naming each difference'
complete -c pipework -n "__fish_pipework_needs_command" -a "detach" -d 'Undo an attachment: the guest\'s interface, its host side, its record'
complete -c pipework -n "__fish_pipework_needs_command" -a "watch" -d 'Keep containers plumbed: re-apply their records at every start, plumb their pipework.<CTR_IF> labels, collect what a removed one leaves'
complete -c pipework -n "__fish_pipework_using_subcommand mkbridge" -l stp -d 'Spanning tree on the bridge' -r -f -a "on\t''
off\t''"
complete -c pipework -n "__fish_pipework_using_subcommand mkbridge" -l forward-delay -d 'Forward delay of the bridge, in seconds [default: 0, the kernel\'s with --stp on]' -r
complete -c pipework -n "__fish_pipework_using_subcommand mkbridge" -l no-firewall -d 'Leave the firewall alone: no rule accepting the bridge\'s own traffic where the FORWARD hook would drop it'
complete -c pipework -n "__fish_pipework_using_subcommand mkbridge" -l dry-run -d 'Print the plan as iproute2 commands and change nothing'
complete -c pipework -n "__fish_pipework_using_subcommand mkbridge" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand loop; and not __fish_seen_subcommand_from free ensure" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand loop; and not __fish_seen_subcommand_from free ensure" -f -a "free" -d 'Print the first free loop device as losetup -f does, making its node if missing'
complete -c pipework -n "__fish_pipework_using_subcommand loop; and not __fish_seen_subcommand_from free ensure" -f -a "ensure" -d 'Make sure loop0 to loop<N-1> exist as block nodes 7:i, mode 0660, group disk'
complete -c pipework -n "__fish_pipework_using_subcommand loop; and __fish_seen_subcommand_from free" -l dev -d 'The device directory' -r -F
complete -c pipework -n "__fish_pipework_using_subcommand loop; and __fish_seen_subcommand_from free" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand loop; and __fish_seen_subcommand_from ensure" -l count -d 'How many loop devices' -r
complete -c pipework -n "__fish_pipework_using_subcommand loop; and __fish_seen_subcommand_from ensure" -l dev -d 'The device directory (a chroot\'s or an image\'s /dev)' -r -F
complete -c pipework -n "__fish_pipework_using_subcommand loop; and __fish_seen_subcommand_from ensure" -l container -d 'Make them in this container\'s /dev instead (any GUEST form)' -r
complete -c pipework -n "__fish_pipework_using_subcommand loop; and __fish_seen_subcommand_from ensure" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand completions" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand show" -l json -d 'JSON for scripts'
complete -c pipework -n "__fish_pipework_using_subcommand show" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand check" -l json -d 'JSON for scripts'
complete -c pipework -n "__fish_pipework_using_subcommand check" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand detach" -s i -d 'Only this interface of the guest [default: all recorded, eth1 without a record]' -r
complete -c pipework -n "__fish_pipework_using_subcommand detach" -l dry-run -d 'Print the plan as iproute2 commands and change nothing'
complete -c pipework -n "__fish_pipework_using_subcommand detach" -s h -l help -d 'Print help'
complete -c pipework -n "__fish_pipework_using_subcommand watch" -l only -d 'Only containers carrying this label (with this value): as docker ps --filter label=...' -r
complete -c pipework -n "__fish_pipework_using_subcommand watch" -l allow -d 'A host interface labels may plumb into: a bridge (made if absent), an ovs* bridge or a macvlan parent; without any, labels are ignored' -r
complete -c pipework -n "__fish_pipework_using_subcommand watch" -l no-firewall -d 'Leave the firewall alone in the attachments it makes (as attach\'s --no-firewall)'
complete -c pipework -n "__fish_pipework_using_subcommand watch" -l no-repair -d 'Do not make again what the host loses under a running container (a bridge\'s ports when it comes back, a deleted host side)'
complete -c pipework -n "__fish_pipework_using_subcommand watch" -s h -l help -d 'Print help'
