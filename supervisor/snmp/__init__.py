"""SNMP: polling the switches, receiving their traps, and the network as built (docs/network-observed.md)."""
