//! A deterministic catalog: the same seed number gives the same products, byte for byte, on
//! every machine (ChaCha8, whose output is fixed by its specification, not `StdRng`).
//!
//! Products spread over 12 categories, each with its own brands, nouns, price band and
//! descriptions; SKUs are `SKU-<category>-<number>` (`SKU-0003-004217`), unique and valid
//! for the public API. Prices are integer cents ending in .99, .49 or .00; stock is 0..=500
//! with about 5% sold out.

use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The smallest catalog `seed` writes by default.
pub const DEFAULT_PRODUCTS: usize = 10_000;
/// The catalog's currency.
pub const CURRENCY: &str = "USD";

/// One seeded product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub brand: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
}

struct Category {
    name: &'static str,
    brands: &'static [&'static str],
    nouns: &'static [&'static str],
    /// Price band in whole dollars.
    dollars: (i64, i64),
    uses: &'static [&'static str],
}

const CATEGORIES: &[Category] = &[
    Category {
        name: "kitchen",
        brands: &["Hearthline", "Copperleaf", "Brightpan", "Oakmill"],
        nouns: &[
            "Kettle",
            "Skillet",
            "Chef's Knife",
            "Dutch Oven",
            "Cutting Board",
            "Coffee Grinder",
        ],
        dollars: (8, 240),
        uses: &[
            "weeknight dinners",
            "slow Sunday roasts",
            "morning coffee",
            "meal prep",
        ],
    },
    Category {
        name: "electronics",
        brands: &["Voltic", "Northwave", "Pixelforge", "Sonara"],
        nouns: &[
            "Headphones",
            "Bluetooth Speaker",
            "USB-C Charger",
            "E-Reader",
            "Webcam",
            "Smart Plug",
        ],
        dollars: (15, 600),
        uses: &["long commutes", "home offices", "travel", "movie nights"],
    },
    Category {
        name: "books",
        brands: &["Inkwell Press", "Lantern House", "Paperkite", "Riverbend"],
        nouns: &[
            "Novel",
            "Cookbook",
            "Field Guide",
            "Poetry Collection",
            "Atlas",
            "Biography",
        ],
        dollars: (6, 60),
        uses: &[
            "rainy afternoons",
            "book clubs",
            "gifting",
            "bedtime reading",
        ],
    },
    Category {
        name: "outdoor",
        brands: &["Ridgeway", "Trailmark", "Summitcraft", "Pinecrest"],
        nouns: &[
            "Tent",
            "Sleeping Bag",
            "Trekking Poles",
            "Headlamp",
            "Daypack",
            "Camp Stove",
        ],
        dollars: (12, 450),
        uses: &[
            "weekend hikes",
            "car camping",
            "alpine starts",
            "backyard nights",
        ],
    },
    Category {
        name: "apparel",
        brands: &["Loomwright", "Fieldcoat", "Cottonway", "Ember & Ash"],
        nouns: &[
            "Rain Jacket",
            "Merino Sweater",
            "Chinos",
            "Flannel Shirt",
            "Wool Socks",
            "Beanie",
        ],
        dollars: (10, 280),
        uses: &["cold mornings", "the office", "travel days", "layering"],
    },
    Category {
        name: "beauty",
        brands: &["Petalwise", "Clearbrook", "Aurelle", "Saltmoss"],
        nouns: &[
            "Face Serum",
            "Hand Cream",
            "Lip Balm",
            "Shampoo",
            "Body Wash",
            "Sunscreen",
        ],
        dollars: (5, 90),
        uses: &[
            "daily routines",
            "dry winters",
            "sensitive skin",
            "the gym bag",
        ],
    },
    Category {
        name: "toys",
        brands: &["Tinkertown", "Bramblebee", "Wondercraft", "Kitehill"],
        nouns: &[
            "Building Set",
            "Puzzle",
            "Plush Bear",
            "Wooden Train",
            "Board Game",
            "Kite",
        ],
        dollars: (7, 150),
        uses: &[
            "family game night",
            "rainy days",
            "birthdays",
            "curious builders",
        ],
    },
    Category {
        name: "home",
        brands: &["Stillwater", "Linen & Loom", "Hollowoak", "Quietroom"],
        nouns: &[
            "Throw Blanket",
            "Table Lamp",
            "Linen Sheets",
            "Wall Clock",
            "Planter",
            "Storage Basket",
        ],
        dollars: (9, 320),
        uses: &[
            "reading nooks",
            "guest rooms",
            "small apartments",
            "calm bedrooms",
        ],
    },
    Category {
        name: "sports",
        brands: &["Fastline", "Corestride", "Peakform", "Tidewater"],
        nouns: &[
            "Running Shoes",
            "Yoga Mat",
            "Kettlebell",
            "Jump Rope",
            "Water Bottle",
            "Cycling Gloves",
        ],
        dollars: (8, 220),
        uses: &["early runs", "home workouts", "race day", "recovery days"],
    },
    Category {
        name: "garden",
        brands: &["Greenbough", "Rootstock", "Fernhollow", "Sunpatch"],
        nouns: &[
            "Pruning Shears",
            "Watering Can",
            "Raised Bed",
            "Seed Kit",
            "Garden Hose",
            "Trowel",
        ],
        dollars: (6, 260),
        uses: &[
            "spring planting",
            "balcony gardens",
            "herb beds",
            "autumn cleanup",
        ],
    },
    Category {
        name: "pets",
        brands: &["Pawsome", "Tailwind", "Whiskerwood", "Barkley"],
        nouns: &[
            "Dog Bed",
            "Cat Tree",
            "Leash",
            "Chew Toy",
            "Food Bowl",
            "Grooming Brush",
        ],
        dollars: (5, 180),
        uses: &["long walks", "lazy naps", "new puppies", "indoor cats"],
    },
    Category {
        name: "office",
        brands: &["Deskcraft", "Papermill", "Quillworks", "Slateline"],
        nouns: &[
            "Notebook",
            "Desk Lamp",
            "Fountain Pen",
            "Monitor Stand",
            "Desk Organizer",
            "Planner",
        ],
        dollars: (4, 210),
        uses: &[
            "deep work",
            "note taking",
            "tidy desks",
            "planning the week",
        ],
    },
];

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Compact",
    "Everyday",
    "Premium",
    "Lightweight",
    "Heritage",
    "Modern",
    "Rugged",
    "Essential",
    "Deluxe",
    "Minimal",
    "Handmade",
    "Ultralight",
    "Signature",
    "Eco",
];
const COLOURS: &[&str] = &[
    "Slate", "Sage", "Sand", "Charcoal", "Ivory", "Cobalt", "Rust", "Forest", "Fog", "Plum",
];
const QUALITIES: &[&str] = &[
    "built to last",
    "easy to clean",
    "made from recycled materials",
    "backed by a two-year warranty",
    "designed with care",
    "tested by our team",
    "a customer favourite",
    "light enough to carry anywhere",
];

/// Generates `count` products from `seed`.
pub fn generate(seed: u64, count: usize) -> Vec<Product> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|n| product(&mut rng, n)).collect()
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

fn product(rng: &mut ChaCha8Rng, n: usize) -> Product {
    let c = n % CATEGORIES.len();
    let category = &CATEGORIES[c];
    let brand = pick(rng, category.brands);
    let noun = pick(rng, category.nouns);
    let adjective = pick(rng, ADJECTIVES);
    let colour = pick(rng, COLOURS);
    let model = rng.random_range(100..1000);
    let (lo, hi) = category.dollars;
    // Skew towards the cheap end of the band, as real catalogs are.
    let u: f64 = rng.random();
    let dollars = lo + ((hi - lo) as f64 * u * u) as i64;
    let cents = *[99i64, 49, 0].choose(rng).unwrap_or(&99);
    let stock = if rng.random_ratio(1, 20) {
        0
    } else {
        rng.random_range(1..=500)
    };
    let uses = pick(rng, category.uses);
    let qualities: Vec<&str> = QUALITIES.choose_multiple(rng, 2).copied().collect();
    let description = format!(
        "The {brand} {adjective} {noun} {model} in {colour}, for {uses}. It is {}.",
        qualities.join(" and "),
    );
    Product {
        sku: format!("SKU-{c:04}-{n:06}"),
        name: format!("{brand} {adjective} {noun} {model} ({colour})"),
        category: category.name.to_string(),
        brand: brand.to_string(),
        description,
        price_cents: dollars * 100 + cents,
        currency: CURRENCY.to_string(),
        stock,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use storefront_contracts::order_lines::validate_sku;

    #[test]
    fn the_same_seed_gives_the_same_catalog() {
        let a = generate(7, DEFAULT_PRODUCTS);
        assert_eq!(a.len(), DEFAULT_PRODUCTS);
        assert_eq!(a, generate(7, DEFAULT_PRODUCTS));
        let b = generate(8, DEFAULT_PRODUCTS);
        assert_eq!(
            a.iter().zip(&b).filter(|(x, y)| x == y).count(),
            0,
            "another seed differs"
        );
        // A prefix of a bigger catalog is the smaller catalog.
        assert_eq!(generate(7, 100), a[..100]);
    }

    #[test]
    fn products_are_realistic_and_valid() {
        let products = generate(1, DEFAULT_PRODUCTS);
        let skus: HashSet<&str> = products.iter().map(|p| p.sku.as_str()).collect();
        assert_eq!(skus.len(), products.len(), "SKUs are unique");
        let categories: HashSet<&str> = products.iter().map(|p| p.category.as_str()).collect();
        assert_eq!(categories.len(), CATEGORIES.len());
        let brands: HashSet<&str> = products.iter().map(|p| p.brand.as_str()).collect();
        assert!(brands.len() >= 40, "{} brands", brands.len());
        for p in &products {
            assert!(validate_sku(&p.sku).is_ok(), "{}", p.sku);
            assert!(
                p.price_cents >= 400 && p.price_cents <= 60_099,
                "{}: {}",
                p.sku,
                p.price_cents
            );
            assert!([99, 49, 0].contains(&(p.price_cents % 100)));
            assert!((0..=500).contains(&p.stock));
            assert!(p.name.contains(&p.brand) && p.description.contains(&p.brand));
            assert!(p.description.len() > 60, "{}", p.description);
            let (_, qualities) = p.description.split_once(". It is ").expect("two sentences");
            let (first, second) = qualities.split_once(" and ").expect("two qualities");
            assert_ne!(first, second.trim_end_matches('.'), "{}", p.description);
            assert_eq!(p.currency, "USD");
        }
        let sold_out = products.iter().filter(|p| p.stock == 0).count();
        assert!(
            (300..=700).contains(&sold_out),
            "about 5% sold out, got {sold_out}"
        );
        let names: HashSet<&str> = products.iter().map(|p| p.name.as_str()).collect();
        assert!(names.len() > products.len() * 9 / 10, "names are varied");
    }
}
