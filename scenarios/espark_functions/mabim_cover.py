# The sandbox defines np (numpy), AgentStates and SupplyChain before this code runs.
# A hand-written exploration function for inventory (algo.espark.generator = "files"): do not order when stock plus
# goods in transit already cover the lead time and a week of mean demand; order at least the mean demand when they
# do not cover the lead time; no more than 4x the mean demand in between.
def compute_mask(agent_states: AgentStates, supply_chain: SupplyChain, action_space: list):
    multiples = np.asarray(action_space, dtype=float)
    stock = agent_states["all_warehouses", "in_stock", "today", "all_skus"]
    transit = agent_states["all_warehouses", "in_transit", "today", "all_skus"]
    demand = agent_states["all_warehouses", "demand", "lookback", "all_skus"].mean(axis=1)
    vlt = agent_states["all_warehouses", "vlt", "today", "all_skus"]
    cover = (stock + transit) / (demand + 1e-6)  # days of mean demand already held or on the way
    total_mask = np.ones(stock.shape + (len(multiples),), dtype=np.int64)
    total_mask[cover >= vlt] = (multiples <= 4.0).astype(np.int64)
    total_mask[cover > vlt + 7] = (multiples == 0.0).astype(np.int64)
    total_mask[cover < vlt] = (multiples >= 1.0).astype(np.int64)
    return total_mask, {}
