"""The `ssh` launcher: the engine on a remote host, over asyncssh. One job per module:

    launcher.py        SshLauncher: check, deploy and start the engine on a host's connections
    connection.py      Connector and Connection: options, connect limits and retries, reuse
    options.py         what every host's options share: cipher order, client keys, login name
    host_keys.py       known_hosts checks, trust on first use, one-line refusals
    lean.py            asyncssh's per-connection costs cut for fleets of thousands of hosts
    asyncssh_import.py asyncssh imported with cryptography's DSA warning silenced
    session.py         SshSession: the engine's channel read by callbacks, remote cancel
    remote_check.py    the script run on the host (sent as its text): packages, cache, exec
    check_reply.py     its reply read here: RemoteCheck, notes and one-line refusals
    remote_cmd.py      the remote command lines, every value one quoted word
    bundle.py          the engine bundle: engine/ and gpubench_supervise.py, content-hashed
    deploy.py          the bundle's upload into the remote cache over SFTP
    gpubench_supervise.py  the supervisor shipped in the bundle: runs and stops the engine

Import each name from its module (scenarios.ssh.launcher.SshLauncher, ...): asyncssh is imported
by the modules that need it, never by this package's import alone.
"""
