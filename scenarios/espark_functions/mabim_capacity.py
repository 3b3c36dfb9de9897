# The sandbox defines np (numpy), AgentStates and SupplyChain before this code runs.
# A hand-written exploration function for inventory (algo.espark.generator = "files"): when a warehouse is nearly
# full, orders above the mean demand only create overflow; when a SKU has no stock and nothing on the way, not
# ordering only creates backlog.
def compute_mask(agent_states: AgentStates, supply_chain: SupplyChain, action_space: list):
    temperature = 0.9  # fill ratio above which big orders are masked
    multiples = np.asarray(action_space, dtype=float)
    total_mask = np.ones((len(supply_chain.get_warehouse_list()), len(agent_states), len(multiples)), dtype=np.int64)
    for w, name in enumerate(supply_chain.get_warehouse_list()):
        stock = agent_states[name, "in_stock", "today", "all_skus"]
        transit = agent_states[name, "in_transit", "today", "all_skus"]
        if stock.sum() + transit.sum() > temperature * supply_chain[name, "capacity"]:
            total_mask[w][:, multiples > 1.0] = 0
        empty = (stock + transit) == 0
        total_mask[w][empty] = (multiples > 0).astype(np.int64)
    return total_mask, {}
