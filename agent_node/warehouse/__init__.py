"""The warehouse game of Alternating-MARL: its model, the shared random streams, the simulator and the floor's
layout; robots, the dispatcher and the learners import it, the world process too."""
