"""The warehouse task of Alternating-MARL: model, vectorised simulator, world process, scenario plan."""
