"""RSM-MASAC core (RSM-MASAC paper, Sec. V): segment split/reassembly, replicas, the accept test, the mixing
weight."""
