"""Real servers on loopback for the system tests, one file per service.

ports (the loopback address, free ports), processes (ServiceError, Daemon, process trees),
service (the shared lifecycle), tls (a test CA), nginx, squid, sshd, hostile (a misbehaving
HTTP server), redfish and ipmi_bmc (BMC emulators). Each server is a class with start()/stop()
(also a context manager) plus a generator context manager that always stops it.
"""
