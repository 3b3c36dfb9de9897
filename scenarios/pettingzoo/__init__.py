"""The pettingzoo kind: any PettingZoo ParallelEnv, hosted in the world process, one agent process per agent."""
