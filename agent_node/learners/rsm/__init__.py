"""RSM-MASAC core (spec RSM-MASAC.md §3): segment split/reassembly, replicas, the accept test and the mixing weight."""
